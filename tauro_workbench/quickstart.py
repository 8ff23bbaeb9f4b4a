"""Where the demo notebooks keep their feature repo and find the sample silver tables.

The notebooks in ``notebooks/`` are meant to be run again and again, headless
(``python notebooks/quickstart.py``) or interactively. Each run starts from a fresh demo repo:
:func:`demo_repo` empties the folder first, but only when it is empty or was created by a demo
(it carries a ``.tauro_demo`` marker), so a real feature repo is never deleted by mistake.

Example:
    >>> repo = demo_repo("feature_repo")          # doctest: +SKIP
    >>> silver = sample_data_path()               # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tauro_workbench.config import ENV_PREFIX
from tauro_workbench.exceptions import ConfigurationError

__all__ = ["DEMO_MARKER", "demo_repo", "sample_data_path"]

DEMO_MARKER = ".tauro_demo"
"""File that marks a folder as a demo repo that :func:`demo_repo` may empty."""
STORAGE_ENV = f"{ENV_PREFIX}STORAGE_PATH"


def demo_repo(default: str | Path = "feature_repo", *, reset: bool = True) -> Path:
    """Return the demo's feature repo folder, emptied for a fresh run when ``reset``.

    The folder is ``$TAURO_FS_STORAGE_PATH`` when that variable is set (the stores read it
    too), else ``default`` relative to the working directory.

    Args:
        default: Folder used when ``TAURO_FS_STORAGE_PATH`` is not set.
        reset: Delete what an earlier demo run left there, so every run starts the same way.

    Returns:
        The folder (created, with the demo marker inside).

    Raises:
        ConfigurationError: If ``reset`` and the folder holds files but no demo marker (it
            looks like a real feature repo, which is left alone).

    Example:
        >>> repo = demo_repo("feature_repo")  # doctest: +SKIP
        >>> (repo / ".tauro_demo").exists()   # doctest: +SKIP
        True
    """
    path = Path(os.environ.get(STORAGE_ENV) or default)
    if reset and path.exists():
        if not path.is_dir():
            raise ConfigurationError(f"The demo repo {str(path)!r} is a file, not a folder.")
        if any(path.iterdir()):
            if not (path / DEMO_MARKER).exists():
                raise ConfigurationError(
                    f"{str(path)!r} holds files that a demo did not create, so it is not emptied.",
                    hint=f"Point {STORAGE_ENV} at another folder, or remove this one yourself.",
                )
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARKER).touch()
    return path


def sample_data_path(start: str | Path | None = None) -> Path:
    """Return the ``sample_data/silver`` folder, searched from ``start`` upwards, then from the cwd.

    Args:
        start: Folder to search from first (e.g. the notebook's folder); the working directory
            and its parents are searched after it.

    Raises:
        ConfigurationError: If no ``sample_data/silver`` folder with the sample tables is found.

    Example:
        >>> sorted(p.name for p in sample_data_path().glob("*.parquet"))  # doctest: +SKIP
        ['purchases.parquet', 'transactions.parquet', 'users.parquet']
    """
    origins = [Path(p).resolve() for p in (start, Path.cwd()) if p is not None]
    for origin in origins:
        for folder in (origin, *origin.parents):
            candidate = folder / "sample_data" / "silver"
            if (candidate / "users.parquet").is_file():
                return candidate
    raise ConfigurationError(
        f"No sample_data/silver folder in {' or '.join(repr(str(o)) for o in origins)} or above.",
        hint="Run from a checkout of tauro_workbench, or regenerate it: python sample_data/generate.py",
    )
