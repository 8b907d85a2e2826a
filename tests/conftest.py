"""Test-suite settings.

* ``EOSTEACH_FAST=1`` unless the caller set it: the lessons executed by nbval and the
  browser test run at their reduced scale (set ``EOSTEACH_FAST=0`` to test full scale).
* ``EOSTEACH_DATA``: where no data folder was given, the read-only copy of CIFAR-10 in
  ``../shared/data`` beside the project is used when it exists.
* ``cifar_root`` fixture: that folder, or a skip with the reason when no copy is found.
  In CI (``CI=true``) a missing copy is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("EOSTEACH_FAST", "1")
if "EOSTEACH_DATA" not in os.environ and (SHARED_DATA / "cifar-10-batches-bin").is_dir():
    os.environ["EOSTEACH_DATA"] = str(SHARED_DATA)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """Folder that holds an extracted ``cifar-10-batches-bin/``."""
    root = Path(os.environ.get("EOSTEACH_DATA", SHARED_DATA))
    if not (root / "cifar-10-batches-bin" / "data_batch_1.bin").is_file():
        message = f"no extracted CIFAR-10 copy found under {root} (set EOSTEACH_DATA)"
        if _in_ci():
            pytest.fail(message + "; CI must run the real-data tests")
        pytest.skip(message)
    return root
