"""The ``embstore`` command line.

User errors (bad input files, damaged stores, missing files, bad options) are printed as one
line on stderr, without a traceback, and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import shlex
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from ._atomic import AtomicFile
from ._version import __version__
from .errors import EmbstoreError
from .progress import human_bytes

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _fmt_float(x: float) -> str:
    import numpy as np

    return np.format_float_positional(np.float32(x), unique=True, trim="-")


# -- commands -------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    from ._convert.convert import convert

    report = convert(args.src, args.dst, format=args.format, member=args.member,
                     limit=args.limit, unicode_errors=args.unicode_errors,
                     on_bad_line=args.on_bad_line, force=args.force, quiet=args.quiet,
                     fsync=args.fsync)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not args.quiet:
        print(report)
        for example in report.skipped_examples:
            print(f"  skipped {example}")
    return EXIT_OK


def info_dict(store: Any) -> dict[str, Any]:
    from . import format as fmt

    h = store.header
    sec = h.sections
    return {
        "path": store.path,
        "format_version": f"{h.major}.{h.minor}",
        "words": len(store),
        "dim": store.dim,
        "file_bytes": h.file_length,
        "sections": {e.name: {"offset": e.offset, "bytes": e.length,
                              **({} if e.kind in fmt.CORE else {"required": e.required})}
                     for e in sec.values()},
        "index_slots": h.n_slots,
        "index_load": round(len(store) / h.n_slots, 4),
        "vector_bytes": sec[fmt.Section.VECTORS].length,
        "metadata": store.metadata,
    }


def cmd_info(args: argparse.Namespace) -> int:
    from .store import open as open_store

    with open_store(args.store) as store:
        d = info_dict(store)
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return EXIT_OK
    meta = d["metadata"]
    src = meta.get("source", {})
    if not isinstance(src, dict):  # metadata is the store's to define; never trust its shape
        src = {}
    secs = d["sections"]
    vocab_bytes = secs["word_offsets"]["bytes"] + secs["word_bytes"]["bytes"]
    lines = [
        d["path"],
        f"  format     embstore {d['format_version']}",
        f"  words      {d['words']:,}",
        f"  dim        {d['dim']}",
        f"  size       {human_bytes(d['file_bytes'])} (vectors {human_bytes(d['vector_bytes'])}, "
        f"vocabulary {human_bytes(vocab_bytes)}, index {human_bytes(secs['index']['bytes'])})",
        f"  index      {d['index_slots']:,} slots, load {d['index_load']:.2f}",
    ]
    if src:
        comp = f", {src['compression']}" if src.get("compression") else ""
        lines.append(f"  source     {src.get('name')} ({src.get('format')}{comp}, "
                     f"{human_bytes(src.get('bytes') or 0)})")
    if meta:
        lines.append(f"  converted  {meta.get('records', 0):,} records, "
                     f"{meta.get('duplicates', 0):,} duplicates dropped, "
                     f"{meta.get('skipped_lines', 0):,} bad lines skipped")
        lines.append(f"  created    {meta.get('created')} by embstore {meta.get('embstore_version')}")
    print("\n".join(lines))
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    from .store import open as open_store

    status = EXIT_OK
    vectors: dict[str, list[float]] = {}
    missing: list[str] = []
    with open_store(args.store) as store:
        for word in args.words:
            vec = store.get(word)
            if vec is None:
                if not args.json:
                    print(f"embstore: {word!r} is not in {args.store}", file=sys.stderr)
                if word not in missing:
                    missing.append(word)
                status = EXIT_ERROR
                continue
            if args.json:
                # The shortest decimal of each float32: read back as float32, it is the same.
                vectors[word] = [float(_fmt_float(x)) for x in vec.tolist()]
            else:
                print(word + " " + " ".join(_fmt_float(x) for x in vec.tolist()))
    if args.json:
        print(json.dumps({"vectors": vectors, "missing": missing}, ensure_ascii=False))
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    from .verifier import verify

    report = verify(args.store)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        print(report)
    else:
        print(f"embstore: {args.store}: store is damaged", file=sys.stderr)
        for p in report.problems:
            print(f"  {p}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_matrix(args: argparse.Namespace) -> int:
    from .matrix import MatrixResult, save_matrix
    from .store import open as open_store

    fallbacks = [f for f in (args.fallback or "").split(",") if f]
    inputs = [args.store, args.vocab]
    with contextlib.ExitStack() as stack:
        report: AtomicFile | None = None
        if args.report:
            # Its temporary is created now, so that a report that cannot be written is found
            # before the matrix is built; it is written before the matrix is published (a
            # full disk then publishes neither) and published right after it.
            report = stack.enter_context(AtomicFile(args.report, kind="report",
                                                    force=args.force, inputs=inputs,
                                                    outputs=[args.out]))

        def write_report(result: MatrixResult) -> None:
            assert report is not None
            d = result.to_dict()
            d.update({"store": args.store, "vocab": args.vocab, "out": args.out,
                      "seed": args.seed})
            report.write((json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

        with open_store(args.store) as store:
            result = save_matrix(store, args.vocab, args.out, force=args.force,
                                 num_words=args.num_words, oov=args.oov, fallbacks=fallbacks,
                                 seed=args.seed,
                                 _before_publish=write_report if report is not None else None)
        if report is not None:
            report.commit()
    print(f"{result.summary()} -> {args.out}")
    return EXIT_OK


def cmd_subset(args: argparse.Namespace) -> int:
    from .store import open as open_store

    fallbacks = [f for f in (args.fallback or "").split(",") if f]
    with open_store(args.store) as store:
        result = store.subset(args.vocab, args.out, order=args.order, num_words=args.num_words,
                              fallbacks=fallbacks, force=args.force)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print(f"Wrote {result.rows:,} words x {result.dim} to {result.path} "
              f"({human_bytes(result.file_bytes)})")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(vectors=args.vectors, vocab=args.vocab, workdir=args.workdir)


# -- parser ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"embstore: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="embstore",
        description="Memory-mapped word-vector stores and embedding matrices.",
    )
    parser.add_argument("--version", action="version", version=f"embstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("convert", help="convert a word2vec/GloVe/fastText file into a store")
    p.add_argument("src", help="input vector file (text or binary; plain, gzip, bz2, xz, zip "
                               "or tar), or - for standard input")
    p.add_argument("dst", help="store file to create")
    p.add_argument("--format", choices=["auto", "text", "glove", "binary"], default="auto",
                   help="input format; auto detects it from the content (default)")
    p.add_argument("--member", metavar="NAME",
                   help="the file to convert in a zip or tar archive holding several")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="convert only the first N rows")
    p.add_argument("--unicode-errors", choices=["strict", "replace", "ignore"], default="strict",
                   help="how to decode words that are not valid UTF-8 (default strict)")
    p.add_argument("--on-bad-line", choices=["error", "skip"], default="error",
                   help="stop at a malformed line (default) or skip and count it")
    p.add_argument("--force", action="store_true", help="replace an existing store atomically")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--fsync", action="store_true",
                   help="flush the store to disk before publishing it (survives power loss; "
                        "as slow as the disk)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="describe a store",
                       description="Describe a store: words, dimension, sizes, sections and "
                                   "where it was converted from.")
    p.add_argument("store", help="the store file (made by embstore convert)")
    p.add_argument("--json", action="store_true",
                   help="print everything as JSON, with the sections and the metadata")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("get", help="print the vectors of words",
                       description="Print the vector of each word, one line 'word v1 v2 ...' "
                                   "per word, each value the shortest decimal that reads back "
                                   "as the same float32.  Exit 1 if a word is missing.")
    p.add_argument("store", help="the store file (made by embstore convert)")
    p.add_argument("words", nargs="+", metavar="WORD",
                   help="words to look up, exactly (no case folding)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: {"vectors": {word: [values]}, "missing": '
                        '[words not in the store]}')
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("verify", help="check every byte of a store (exit 0 only if intact)",
                       description="Check every byte of a store against its checksums and "
                                   "every structure (index, words, offsets, statistics); exit "
                                   "0 only if it is intact.")
    p.add_argument("store", help="the store file to check")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (ok, problems, blocks checked)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("matrix", help="build an embedding matrix (.npy) for a vocabulary")
    p.add_argument("store")
    p.add_argument("vocab", help="JSON word_index, or a text file with one token per line")
    p.add_argument("--out", required=True, help="output .npy file")
    p.add_argument("--num-words", type=_positive_int, metavar="N",
                   help="rows = min(N, max index + 1), like the Keras Tokenizer")
    p.add_argument("--oov", choices=["zeros", "mean", "random"], default="zeros",
                   help="fill for words not in the store (default zeros)")
    p.add_argument("--fallback", metavar="RULES", type=_fallback_rules,
                   help="comma-separated case fallbacks tried after a miss: lower,title,upper")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed for --oov random, 0 <= S < 2**32 (default 0)")
    p.add_argument("--report", metavar="FILE", help="write hits, misses and missing words as JSON")
    p.add_argument("--force", action="store_true",
                   help="replace an existing matrix (.npy) and report (JSON) atomically")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("subset", help="write a smaller store holding only a vocabulary's words")
    p.add_argument("store", help="the store to read")
    p.add_argument("vocab", help="JSON word_index, or a text file with one token per line")
    p.add_argument("out", help="the store to create")
    p.add_argument("--order", choices=["store", "vocab"], default="store",
                   help="row order: the source store's (default) or the vocabulary's ids")
    p.add_argument("--num-words", type=_positive_int, metavar="N",
                   help="only vocabulary ids below N, like the Keras Tokenizer")
    p.add_argument("--fallback", metavar="RULES", type=_fallback_rules,
                   help="comma-separated case fallbacks tried after a miss: lower,title,upper")
    p.add_argument("--force", action="store_true", help="replace an existing store atomically")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_subset)

    p = sub.add_parser("demo", help="run convert -> info -> matrix on a built-in example")
    p.add_argument("--vectors", help="your vector file instead of the built-in example")
    p.add_argument("--vocab", help="your vocabulary (JSON word_index or token list)")
    p.add_argument("--workdir", default="demo-output", help="where outputs go (default demo-output)")
    p.set_defaults(func=cmd_demo)
    return parser


def _fallback_rules(text: str) -> str:
    """``--fallback "lower, title"`` -> ``"lower,title"``; unknown rules are reported by the
    library when the command runs (one line, exit 1), as every other bad value is."""
    return ",".join(r.strip() for r in text.split(",") if r.strip())


def _seed(text: str) -> int:
    """A seed NumPy accepts; argparse names the option in its message."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 0 <= S < 2**32, got {text!r}"
                                         ) from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer 0 <= S < 2**32, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# Library messages name keyword arguments; the command line names its flags instead.
_OPTION_RE = re.compile(
    r"\b(on_bad_line|unicode_errors|limit|format|member|force|num_words|oov|seed|fallbacks)"
    r"=(\"[^\"]*\"|'[^']*'|[\w.,-]+)")


def as_flags(message: str) -> str:
    """``on_bad_line="skip"`` -> ``--on-bad-line skip``, ``force=True`` -> ``--force``."""
    def flag(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2).strip("\"'")
        option = "--" + ("fallback" if name == "fallbacks" else name.replace("_", "-"))
        if name == "force":
            return option
        return f"{option} {shlex.quote(value)}"  # a member name may hold spaces

    return _OPTION_RE.sub(flag, message)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, EmbstoreError):
        if exc.filename is not None:
            return f"{exc.filename}: {exc.strerror or exc}"
        return str(exc.strerror or exc)
    if isinstance(exc, KeyError):
        return f"not found: {exc.args[0]!r}"
    return as_flags(" ".join(str(exc).split()))


def _error_json(exc: BaseException) -> str:
    """The error as one JSON object, for ``--json``: the message and its parts."""
    path = getattr(exc, "path", None)
    if path is None and isinstance(exc, OSError):
        path = exc.filename
    return json.dumps({"error": _one_line(exc), "type": type(exc).__name__,
                       "path": None if path is None else str(path),
                       "line": getattr(exc, "line", None), "offset": getattr(exc, "offset", None)},
                      ensure_ascii=False)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Library warnings (e.g. a low matrix coverage) as one line, in the CLI's words."""
    print(f"embstore: warning: {as_flags(' '.join(str(message).split()))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args))
    except KeyboardInterrupt:
        print("embstore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output closed early (e.g. piped into head); not an error worth a traceback.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return EXIT_OK  # noqa: B012
    except (EmbstoreError, OSError, ValueError, TypeError, KeyError) as exc:
        if getattr(args, "json", False):
            print(_error_json(exc), file=sys.stderr)
        else:
            print(f"embstore: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
