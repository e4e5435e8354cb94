"""What a conversion did."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_NAMES = {
    "text": "word2vec text",
    "glove": "GloVe text (no header)",
    "binary": "word2vec binary",
}


@dataclass
class ConversionReport:
    """What a conversion did; ``str(report)`` is the one-line summary the CLI prints."""

    source: str
    destination: str
    format: str
    compression: str | None
    rows: int
    dim: int
    records: int
    duplicates: int
    skipped_lines: int
    blank_lines: int
    declared_rows: int | None
    bytes_read: int
    input_bytes: int
    store_bytes: int
    seconds: float
    skipped_examples: list[str] = field(default_factory=list)
    member: str | None = None  # the archive member converted

    @property
    def mb_per_s(self) -> float:
        """Decompressed input megabytes (10**6) parsed per second."""
        return self.bytes_read / 1e6 / max(self.seconds, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mb_per_s"] = round(self.mb_per_s, 1)
        return d

    def __str__(self) -> str:
        kind = FORMAT_NAMES.get(self.format, self.format)
        if self.compression:
            kind += f", {self.compression}"
        if self.member:
            kind += f" member {self.member}"
        text = (
            f"Converted {self.rows:,} word{'' if self.rows == 1 else 's'} x {self.dim} ({kind}) "
            f"from {self.source} "
            f"to {self.destination} in {self.seconds:.2f} s ({self.mb_per_s:,.0f} MB/s)"
        )
        extras = []
        if self.duplicates:
            extras.append(f"{self.duplicates:,} duplicate words dropped (first kept)")
        if self.skipped_lines:
            extras.append(f"{self.skipped_lines:,} bad lines skipped")
        if extras:
            text += "; " + ", ".join(extras)
        return text
