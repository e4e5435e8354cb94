"""Every parallel kernel of the package, for tests, benchmarks and warm-up.

Its own module, imported by no kernel module, so that importing them all creates no cycle.
"""

from __future__ import annotations

from . import binary, checksum, gather, index, stats, text, verify  # noqa: F401
from ._core import ParallelKernel, registered


def kernels() -> list[ParallelKernel]:
    """Every ``ParallelKernel`` of embstore."""
    return registered()
