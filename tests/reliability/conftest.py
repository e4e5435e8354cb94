"""Fixtures for the reliability tests.

The helper modules (``relutil``, ``fuzz_converter``) live next to the tests and are imported
by name, both here and in the child processes the tests start; this directory is put on
``sys.path`` so that works under any pytest import mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import relutil  # noqa: E402


@pytest.fixture(scope="session")
def rel_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def base_store(rel_workdir: Path) -> tuple[Path, list[str], object]:
    """A store spanning two checksum blocks (so the checksum section has two entries):
    3000 words x 100 dims, converted from word2vec text."""
    d = rel_workdir / "base"
    d.mkdir()
    return relutil.make_store(d, 3000, 100, seed=1)
