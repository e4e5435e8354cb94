"""A smaller store holding only the words of a vocabulary.

Users with a 3M-word GoogleNews store and a 400k-word corpus vocabulary want a store of
their own words: a few hundred MB to ship with a model or map on a small server.  The rows
are looked up like ``build_matrix`` does (the same vocabulary forms and case fallbacks), read
in store order in windows whose mapped pages are released afterwards (memory stays near one
window however large the source), and written through the store builder: vectors, words and
statistics are those of the source rows, bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import format as fmt
from ._atomic import check_destination
from ._build.builder import BuildResult, StoreBuilder, provenance
from .lookup import resolve_rows
from .vocab import VocabLike, normalize

if TYPE_CHECKING:
    from .store import EmbeddingStore

__all__ = ["ORDERS", "subset"]

ORDERS = ("store", "vocab")
WINDOW_BYTES = 8 << 20  # vectors copied per batch


def subset(store: EmbeddingStore, vocab: VocabLike, dst: str | os.PathLike[str], *,
           order: str = "store", num_words: int | None = None,
           fallbacks: Sequence[str] = (), force: bool = False) -> BuildResult:
    """Write the rows of ``store`` that ``vocab`` names to a new store at ``dst``.

    Args:
        vocab: any form ``build_matrix`` accepts (word_index dict, token list, Keras layer,
            vocabulary file); padding and ``[UNK]`` are not words and are left out.
        order: ``"store"`` keeps the source's row order (frequency order for most files);
            ``"vocab"`` orders rows by the vocabulary's ids (first occurrence wins).
        fallbacks: case variants tried after an exact miss (``lower``, ``title``, ``upper``);
            the store word that was found is written, with its vector.
        force: replace an existing store at ``dst`` (only a store: anything else is refused).

    Returns:
        A :class:`~embstore._build.builder.BuildResult`; words of ``vocab`` the store lacks
        are simply not in the subset.

    Raises:
        ValueError: ``order`` is unknown, or no word of ``vocab`` is in the store.
        StoreExistsError: ``dst`` exists and ``force`` is false.
        OutputError: ``dst`` is the store or the vocabulary file (also through a link), ends
            with a separator, or with ``force`` is not a store.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    inputs = [store.path, vocab if isinstance(vocab, (str, os.PathLike)) else None]
    check_destination(dst, inputs=inputs, force=force, kind="store")  # before the lookups
    v = normalize(vocab, num_words)
    rows, _ = resolve_rows(store, v.words, fallbacks)
    store.release_vocabulary()
    found = rows >= 0
    if order == "store":
        picked = np.unique(rows[found])
    else:
        by_id = np.argsort(v.positions[found], kind="stable")
        ordered = rows[found][by_id]
        _, first = np.unique(ordered, return_index=True)
        picked = ordered[np.sort(first)]
    if picked.size == 0:
        raise ValueError(f"none of the {len(v.words):,} vocabulary words is in {store.path}")
    dim = store.dim
    vectors = store.vectors
    voff = store.header.sections[fmt.Section.VECTORS].offset
    batch = max(1, WINDOW_BYTES // (4 * dim))
    with StoreBuilder(dst, dim, force=force, expected_rows=int(picked.size),
                      label=store.path, inputs=inputs) as builder:
        for a in range(0, picked.size, batch):
            part = picked[a:a + batch]
            words = [store.word_bytes(int(r)).decode("utf-8") for r in part.tolist()]
            builder.add(words, np.take(vectors, part, axis=0), first_row=a)
            # Drop the source pages just copied (in vocabulary order they are spread out:
            # the span between the lowest and highest row; later batches fault back what
            # they share with it from the page cache).
            lo = int(part.min()) * 4 * dim
            store.release(voff + lo, (int(part.max()) + 1) * 4 * dim - lo)
        meta = provenance(
            {"name": os.path.basename(store.path), "format": "embstore-subset",
             "compression": None, "bytes": store.file_size, "declared_rows": len(store),
             "store_id": store.store_id},
            records=int(picked.size), duplicates=builder.duplicates, skipped_lines=0,
            limit=None, subset={"vocabulary_words": len(v.words), "order": order,
                                "fallbacks": list(fallbacks)})
        return builder.finish(meta)
