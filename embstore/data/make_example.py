"""Regenerate the built-in example files used by ``embstore demo``.

The example vectors are a real (small) word2vec model: gensim's Word2Vec trained on the
docstrings of the Python standard library, which every Python installation carries, so the
example needs no download and no third-party text.  The example vocabulary is a Keras-style
``word_index`` (1-based, most frequent first) of the Zen of Python with its original
capitalisation, so that some words are found exactly, some only through a case fallback and
some not at all.

Run from the repository root (needs gensim)::

    python embstore/data/make_example.py
"""

from __future__ import annotations

import gzip
import io
import json
import pkgutil
import re
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = re.compile(r"[A-Za-z][A-Za-z']*")


def stdlib_sentences() -> list[list[str]]:
    import importlib

    sentences: list[list[str]] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules() if not m.name.startswith("_")):
        if mod in {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "test"}:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(mod)
        except Exception:
            continue
        if "site-packages" in (getattr(module, "__file__", None) or ""):
            continue
        docs = [module.__doc__ or ""]
        for obj in vars(module).values():
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and getattr(obj, "__module__", None) == mod:
                docs.append(doc)
        for doc in docs:
            for line in re.split(r"[.\n]\s*", doc):
                words = [w.lower() for w in TOKEN.findall(line)]
                if len(words) > 2:
                    sentences.append(words)
    return sentences


def main() -> None:
    from gensim.models import Word2Vec

    sentences = stdlib_sentences()
    model = Word2Vec(sentences, vector_size=32, window=5, min_count=8, workers=1, seed=7,
                     epochs=10)
    kv = model.wv
    keep = kv.index_to_key[:1500]
    buf = io.StringIO()
    buf.write(f"{len(keep)} {kv.vector_size}\n")
    for word in keep:
        buf.write(word + " " + " ".join(f"{x:.5f}" for x in kv[word]) + "\n")
    with gzip.GzipFile(HERE / "example.vec.gz", "wb", mtime=0) as fh:
        fh.write(buf.getvalue().encode("utf-8"))

    import this

    zen = "".join({**{chr(i + c): chr((i + 13) % 26 + c) for c in (65, 97) for i in range(26)}}
                  .get(ch, ch) for ch in this.s)
    counts = Counter(TOKEN.findall(zen))
    word_index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}
    (HERE / "example_word_index.json").write_text(json.dumps(word_index, indent=0) + "\n")
    print(f"{len(keep)} vectors x {kv.vector_size}, vocabulary of {len(word_index)} words")


if __name__ == "__main__":
    main()
