"""Online stores: the latest feature values per entity, for low-latency serving.

``InMemoryOnlineStore`` (default, in process) and ``RedisOnlineStore`` implement the
:class:`OnlineStore` protocol; :func:`create_online_store` builds the configured one. Redis is
imported only when a Redis store is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tauro_workbench.config import FeatureStoreConfig, OnlineStoreConfig
from tauro_workbench.exceptions import ConfigurationError
from tauro_workbench.online.base import OnlineRow, OnlineStore, WriteResult
from tauro_workbench.online.memory import InMemoryOnlineStore
from tauro_workbench.online.redis_url import check_url

if TYPE_CHECKING:
    from tauro_workbench.online.redis import RedisOnlineStore

__all__ = [
    "InMemoryOnlineStore",
    "OnlineRow",
    "OnlineStore",
    "RedisOnlineStore",
    "WriteResult",
    "create_online_store",
]


def create_online_store(
    config: OnlineStoreConfig | FeatureStoreConfig | None = None,
) -> OnlineStore:
    """Build the online store described by ``config`` (default: an in-memory store).

    Given a whole :class:`FeatureStoreConfig`, its retry options (``max_retries``,
    ``retry_backoff_ms``, ``retry_backoff_multiplier``) apply to Redis as well.

    Raises:
        ConfigurationError: If ``type="redis"`` has no ``url``, or a malformed one (the
            message shows it with the password hidden, and the expected form).
        MissingExtraError: If Redis is asked for and redis-py is not installed.

    Example:
        >>> create_online_store(OnlineStoreConfig(type="memory")).kind
        'memory'
    """
    retries: dict[str, Any] = {}
    if isinstance(config, FeatureStoreConfig):
        retries = {
            "max_retries": config.max_retries,
            "retry_backoff_ms": config.retry_backoff_ms,
            "retry_backoff_multiplier": config.retry_backoff_multiplier,
        }
        config = config.online_store
    config = config or OnlineStoreConfig()
    if config.type == "memory":
        return InMemoryOnlineStore()
    if not config.url:
        raise ConfigurationError(
            "online_store.type is 'redis' but online_store.url is not set",
            hint="Set online_store={'type': 'redis', 'url': 'redis://127.0.0.1:6379/0'} "
            "(or TAURO_FS_ONLINE_STORE__URL).",
        )
    check_url(config.url)  # before importing redis-py: a bad URL is a configuration error
    from tauro_workbench.online.redis import RedisOnlineStore

    return RedisOnlineStore(
        config.url,
        key_prefix=config.key_prefix,
        socket_timeout_seconds=config.socket_timeout_seconds,
        max_connections=config.max_connections,
        batch_size=config.batch_size,
        **retries,
    )


def __getattr__(name: str) -> object:
    if name == "RedisOnlineStore":
        from tauro_workbench.online.redis import RedisOnlineStore

        return RedisOnlineStore
    raise AttributeError(f"module 'tauro_workbench.online' has no attribute {name!r}")
