"""Redis URLs: checked before a pool is built, and shown with the password hidden.

Kept apart from :mod:`tauro_workbench.online.redis` because it needs no redis-py.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from tauro_workbench.exceptions import ConfigurationError

__all__ = ["URL_FORM", "check_url", "redact"]

#: The accepted form, quoted by errors.
URL_FORM = "redis://host:port/db (or rediss://... for TLS, redis://:password@host:port/db)"


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (never raises, even when malformed).

    Example:
        >>> redact("redis://user:secret@host:6379/0")
        'redis://user:***@host:6379/0'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # e.g. a port that is not a number: hide everything before the host
        return re.sub(r"(?<=://)[^@/]*@", "***@", url)


def check_url(url: str) -> None:
    """Raise a :class:`ConfigurationError` naming ``url`` (redacted) unless it is a Redis URL.

    Raises:
        ConfigurationError: If the scheme is not redis/rediss/unix, the port is not a number
            or the database is not an integer.

    Example:
        >>> check_url("redis://127.0.0.1:6379/0")
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
        problem = None
        if parts.scheme not in ("redis", "rediss", "unix"):
            problem = f"the scheme is {parts.scheme!r}, not redis or rediss"
        elif parts.scheme != "unix" and not parts.hostname:
            problem = "it has no host"
        elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
            problem = f"the database {parts.path.strip('/')!r} is not a number"
    except ValueError as err:
        problem = str(err)
    if problem is not None:
        raise ConfigurationError(
            f"online_store.url {redact(url)!r} is not a Redis URL: {problem}",
            hint=f"Use {URL_FORM}.",
        )
