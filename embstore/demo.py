"""``embstore demo``: the whole job, end to end, on a built-in example or on your files.

1. convert a vector file into a store,
2. describe and verify the store,
3. build an embedding matrix for a vocabulary and save it as ``.npy`` with a JSON report,
4. show a few lookups.

The built-in example is a small word2vec model trained on the Python standard library's
docstrings and the vocabulary of the Zen of Python (see ``embstore/data/make_example.py``).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np


def _data_file(name: str) -> str:
    return str(resources.files("embstore") / "data" / name)


def _neighbours(store: object, word: str, k: int = 5) -> list[str]:
    """Nearest words by cosine similarity; only used on small stores."""
    vectors = np.asarray(store.vectors, dtype=np.float32)  # type: ignore[attr-defined]
    norms = np.linalg.norm(vectors, axis=1) + 1e-12
    q = store[word]  # type: ignore[index]
    sims = vectors @ q / (norms * (np.linalg.norm(q) + 1e-12))
    order = np.argsort(-sims)[: k + 1]
    words = store.words  # type: ignore[attr-defined]
    return [words[int(i)] for i in order if words[int(i)] != word][:k]


def run_demo(vectors: str | None = None, vocab: str | None = None,
             workdir: str | os.PathLike[str] = "demo-output") -> int:
    from ._convert.convert import convert
    from .matrix import save_matrix
    from .store import open as open_store
    from .verifier import verify

    builtin = vectors is None
    src = vectors or _data_file("example.vec.gz")
    vocab_path = vocab or (_data_file("example_word_index.json") if builtin else None)
    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "vectors.emb"

    print(f"1. embstore convert {src} {store_path} --force")
    report = convert(src, store_path, force=True)
    print(f"   {report}")

    print(f"2. embstore info {store_path} / embstore verify {store_path}")
    checked = verify(store_path)
    print(f"   {checked}")

    with open_store(store_path) as store:
        if vocab_path is None:
            print("3. no vocabulary given (--vocab); using the store's first 1,000 words")
            tokens = ["", "[UNK]", *store.words[:1000]]
            vocab_path = str(out / "vocab.txt")
            Path(vocab_path).write_text("\n".join(tokens) + "\n", encoding="utf-8")
        matrix_path = out / "matrix.npy"
        report_path = out / "matrix-report.json"
        print(f"3. embstore matrix {store_path} {vocab_path} --out {matrix_path} "
              "--oov random --fallback lower,title")
        result = save_matrix(store, vocab_path, matrix_path, oov="random",
                              fallbacks=["lower", "title"], seed=0)
        report_path.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        print(f"   {result.summary()} -> {matrix_path}")
        if result.missing:
            shown = ", ".join(result.missing[:8])
            print(f"   missing: {shown}{' ...' if len(result.missing) > 8 else ''}")
        print(f"   report: {report_path}")

        print("4. lookups")
        sample = [w for w in ("list", "file", "string", "error") if w in store] if builtin \
            else list(store.words[:3])
        for word in sample:
            if len(store) <= 200_000:
                print(f"   nearest to {word!r}: {', '.join(_neighbours(store, word))}")
            else:
                print(f"   {word!r}: row {store.get_index(word)}, "
                      f"first values {np.round(store[word][:4], 4).tolist()}")
    print(f"Done. Outputs are in {out}/")
    return 0
