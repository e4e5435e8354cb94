"""A minimal progress line for long conversions, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as disks and downloads are sized)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class Progress:
    """Redraws one status line at most every ``interval`` seconds; silent when disabled."""

    def __init__(self, label: str, total: int | None, *, enabled: bool,
                 stream: TextIO | None = None, interval: float = 0.25) -> None:
        self.label = label
        self.total = total or None
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    @staticmethod
    def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
        stream = stream or sys.stderr
        return not quiet and hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        parts = [self.label]
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            parts.append(f"[{bar:<24}] {frac * 100:5.1f}%")
            parts.append(f"{human_bytes(done)} / {human_bytes(self.total)}")
            if rate > 0 and frac < 1:
                parts.append(f"ETA {max(self.total - done, 0) / rate:4.0f} s")
        else:
            parts.append(human_bytes(done))
        parts.append(f"{human_bytes(rate)}/s")
        self.stream.write("\r" + "  ".join(parts) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
