"""Where things run and how big they are.

* ``fast()`` / ``scale(default, fast)``: the lessons read the size of every heavy cell from
  here. ``EOSTEACH_FAST=1`` (set by the test suite and CI) shrinks the work while keeping
  each phenomenon visible.
* ``device(...)``: CUDA when available, else CPU, with an override.
* ``data_dir(...)`` / ``runs_dir(...)``: the cache folders, chosen by argument, else by
  environment variable (``EOSTEACH_DATA``, ``EOSTEACH_RUNS``), else the platform's cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import validate

_TRUE = {"1", "true", "yes", "on"}


def fast() -> bool:
    """True when ``EOSTEACH_FAST`` is set to 1/true/yes/on."""
    return os.environ.get("EOSTEACH_FAST", "").strip().lower() in _TRUE


def scale(default, fast_value):
    """Return ``fast_value`` under ``EOSTEACH_FAST=1``, else ``default``."""
    return fast_value if fast() else default


def cache_root() -> Path:
    """The platform's per-user cache folder for eosteach."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "eosteach"


def data_dir(path=None) -> Path:
    """Folder for datasets: ``path``, else ``$EOSTEACH_DATA``, else ``cache_root()/data``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("EOSTEACH_DATA")
    if env:
        return Path(env).expanduser()
    return cache_root() / "data"


def runs_dir(path=None) -> Path:
    """Folder for cached training runs: ``path``, else ``$EOSTEACH_RUNS``, else ``cache_root()/runs``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("EOSTEACH_RUNS")
    if env:
        return Path(env).expanduser()
    return cache_root() / "runs"


DEVICE_CHOICES = ("auto", "cpu", "cuda")


def device(name=None):
    """The torch device to compute on.

    ``None`` or ``"auto"`` picks CUDA when available, else the CPU; ``"cpu"``, ``"cuda"``
    or ``"cuda:N"`` (or a ``torch.device``) force a choice. Asking for CUDA on a machine
    without it raises ValueError rather than failing later inside a kernel.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not (name in DEVICE_CHOICES or name.startswith("cuda:")):
        validate.choice("device", name, DEVICE_CHOICES + ("cuda:N",))
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(name)
