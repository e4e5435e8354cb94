"""Whole-process A/B benchmark: embstore at two git revisions, same data, same run.

    python benchmarks/ab.py --base HEAD                      # HEAD vs the working tree
    python benchmarks/ab.py --base main~3 --head main --size 1m --repeat 5 --busy

Why it exists: ``run.py`` compares embstore with gensim and with I/O floors, always with the
code of this checkout.  A refactor needs a different question answered -- "is the new code
slower or bigger than the old one, beyond the noise of this machine?" -- and numbers taken on
different days (or in different runs) do not answer it on a shared, virtualised VM whose speed
drifts by more than the effects looked for.  So this script measures both revisions in the
same run, interleaved:

* the base revision (and the head, if it is a revision) is checked out with ``git worktree add
  --detach /tmp/embstore-ab-<sha>`` (reused when present); by default the head is the working
  tree of this checkout, uncommitted changes included;
* every measured process is a fresh interpreter running ``benchmarks/tasks.py`` (of this
  checkout, the same harness for both sides) with ``PYTHONPATH=<tree>`` and ``cwd=<tree>``, so
  ``import embstore`` loads that tree's package (checked once per tree), and with a Numba cache
  of its own (``/tmp/embstore-ab-cache-<sha>``), warmed by one untimed run of every task;
* time (spawn to exit) and peak RSS come from ``run.measure``: ``wait4`` on exactly that
  process, from a tiny wrapper interpreter;
* within each repetition each task runs base then head back to back (head first on odd
  repetitions), after reading its inputs once (warm page cache), and the ratio head/base is
  taken pair by pair before the median, so drift hits both sides equally;
* the stores read by ``open`` and ``matrix`` are converted by each tree itself (formats may
  differ between revisions), untimed, into a scratch directory deleted at the end; outputs of
  measured runs are deleted after each run; ``matrix`` outputs of both trees are compared;
* ``--busy`` repeats every measurement while a spinner process, pinned to another core, burns
  CPU: a refactor that changes parallelism or thread counts can look neutral on an idle
  machine and not on a loaded one.

The spread of the per-pair ratios is the noise level of the run: with ``--base HEAD`` and a
clean working tree (A/A) it shows how far from 1.00 a ratio can drift by chance.

Results: a Markdown table (printed) and JSON with every run, in ``benchmarks/results/``
(``ab-<size>.md``, ``ab-<size>.json``).  Exit status 1 if a measured process failed, the trees'
matrices differ, or a tree's sources changed during the run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import generate
from benchmarks.run import FALLBACKS, SIZES, machine_info, measure, npy_digest, warm

REPO = Path(__file__).resolve().parent.parent
TASKS_PY = REPO / "benchmarks" / "tasks.py"
DEFAULT_OUT = REPO / "benchmarks" / "results"
SCHEMA = 1
TASKS = ("convert-binary", "convert-text", "open", "matrix")
WORKTREE = "WORKTREE"
DEFAULT_VOCAB = 200_000
WORKTREE_PREFIX = "/tmp/embstore-ab-"
CACHE_PREFIX = "/tmp/embstore-ab-cache-"

# A child that pins itself to one core, says so, and spins until it is killed.
_SPINNER = """
import os, sys
os.sched_setaffinity(0, {%d})
sys.stdout.write("ready\\n")
sys.stdout.flush()
while True:
    pass
"""

# Which embstore a measured process imports: the same sys.path as ``python tasks.py``
# (script directory first, then PYTHONPATH), so the check sees what the tasks will see.
_WHICH = "import sys; sys.path[0] = %r; import embstore; print(embstore.__file__)"


# -- git trees --------------------------------------------------------------------------------


def git(*args: str, cwd: Path = REPO) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve_rev(rev: str) -> str:
    """The full commit id of ``rev``."""
    return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def _registered_worktrees() -> set[str]:
    out = git("worktree", "list", "--porcelain")
    return {line[len("worktree "):] for line in out.splitlines() if line.startswith("worktree ")}


def materialise(sha: str, quiet: bool) -> Path:
    """A detached worktree of ``sha`` at ``/tmp/embstore-ab-<sha>``, added unless present."""
    path = Path(WORKTREE_PREFIX + sha[:12])
    if path.exists():
        head = git("rev-parse", "HEAD", cwd=path)
        if head != sha:
            raise SystemExit(f"{path} exists but is at {head[:12]}, not {sha[:12]}; "
                             f"remove it (git worktree remove {path}) and run again")
        if git("status", "--porcelain", "--", "embstore", cwd=path):
            raise SystemExit(f"{path} has local changes under embstore/; it must be a clean "
                             f"checkout of {sha[:12]} (git worktree remove --force {path})")
        return path
    force = ["--force"] if str(path) in _registered_worktrees() else []  # registered, missing
    if not quiet:
        print(f"git worktree add --detach {path} {sha[:12]}", file=sys.stderr, flush=True)
    git("worktree", "add", *force, "--detach", str(path), sha)
    return path


def fingerprint(tree: Path) -> str:
    """SHA-1 over the paths and contents of every file of ``tree/embstore`` (no caches)."""
    h = hashlib.sha1(usedforsecurity=False)
    pkg = tree / "embstore"
    for p in sorted(pkg.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts or p.suffix in (".pyc", ".nbi", ".nbc"):
            continue
        h.update(str(p.relative_to(pkg)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass
class Tree:
    """One side of the comparison: where its code is, its Numba cache, its scratch space."""

    role: str  # "base" or "head"
    spec: str  # as given on the command line
    path: Path
    commit: str  # full sha of the revision, or of HEAD for the working tree
    label: str  # short sha, "+dirty" for a working tree with changes under embstore/
    cache_dir: Path
    scratch: Path = field(default_factory=Path)
    store: Path | None = None
    module_file: str = ""
    fingerprint_start: str = ""
    fingerprint_end: str = ""

    def env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(self.path), NUMBA_CACHE_DIR=str(self.cache_dir))

    def info(self) -> dict[str, Any]:
        return {"role": self.role, "spec": self.spec, "path": str(self.path),
                "commit": self.commit, "label": self.label, "cache_dir": str(self.cache_dir),
                "embstore_file": self.module_file, "fingerprint_start": self.fingerprint_start,
                "fingerprint_end": self.fingerprint_end}


def make_tree(role: str, spec: str, quiet: bool) -> Tree:
    if spec == WORKTREE:
        head = resolve_rev("HEAD")
        dirty = bool(git("status", "--porcelain", "--", "embstore"))
        return Tree(role, spec, REPO, head, head[:7] + ("+dirty" if dirty else ""),
                    Path(CACHE_PREFIX + "worktree"))
    sha = resolve_rev(spec)
    return Tree(role, spec, materialise(sha, quiet), sha, sha[:7],
                Path(CACHE_PREFIX + sha[:12]))


@contextlib.contextmanager
def working_dir(path: Path) -> Iterator[None]:
    """``cwd`` for the processes started inside (``measure`` has no ``cwd`` argument)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def check_import(tree: Tree) -> None:
    """Fail unless a task process of ``tree`` imports the embstore package of that tree."""
    proc = subprocess.run([sys.executable, "-c", _WHICH % str(TASKS_PY.parent)],
                          capture_output=True, text=True, env=tree.env(), cwd=tree.path,
                          timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"{tree.role}: import embstore failed:\n{proc.stderr.strip()}")
    module = proc.stdout.strip().splitlines()[-1]
    print(f"{tree.role} ({tree.spec}, {tree.label}): embstore from {module}", file=sys.stderr,
          flush=True)
    if not Path(module).resolve().is_relative_to(tree.path.resolve()):
        raise SystemExit(f"{tree.role}: embstore was imported from {module}, not from "
                         f"{tree.path}")
    tree.module_file = module


# -- tasks ------------------------------------------------------------------------------------


@dataclass
class Data:
    binary: generate.GeneratedFile | None
    text: generate.GeneratedFile | None
    vocab: generate.VocabFile | None
    probe: str


@dataclass(frozen=True)
class TaskSpec:
    argv: list[str]  # arguments of tasks.py
    inputs: tuple[Path, ...]  # read once before each pair
    output: Path | None = None  # deleted before and after each run
    expect_rows: int | None = None
    digest: bool = False


def task_spec(task: str, tree: Tree, data: Data) -> TaskSpec:
    if task in ("convert-binary", "convert-text"):
        src = data.binary if task == "convert-binary" else data.text
        assert src is not None
        out = tree.scratch / "convert.emb"
        return TaskSpec(["embstore-cli", "convert", str(src.path), str(out), "--json"],
                        (src.path,), out, expect_rows=src.rows)
    assert tree.store is not None and data.binary is not None
    if task == "open":
        return TaskSpec(["open-embstore", str(tree.store), data.probe], (tree.store,),
                        expect_rows=data.binary.rows)
    if task == "matrix":
        assert data.vocab is not None
        out = tree.scratch / "matrix.npy"
        return TaskSpec(["embstore-cli", "matrix", str(tree.store), str(data.vocab.path),
                         "--out", str(out), "--fallback", FALLBACKS],
                        (tree.store, data.vocab.path), out, digest=True)
    raise ValueError(task)


def _rows(run: dict[str, Any]) -> Any:
    report = run.get("report")
    if isinstance(report, dict) and "rows" in report:
        return report["rows"]
    return run["facts"].get("rows")


def run_task(tree: Tree, spec: TaskSpec, timeout: float) -> dict[str, Any]:
    """One measured process of ``tree``; its outputs are checked and deleted."""
    if spec.output is not None:
        spec.output.unlink(missing_ok=True)
    try:
        with working_dir(tree.path):
            run = measure([sys.executable, str(TASKS_PY), *spec.argv], env=tree.env(),
                          timeout=timeout)
        if run["rc"] == 0:
            rows = _rows(run)
            if spec.expect_rows is not None and rows != spec.expect_rows:
                run["check_error"] = f"expected {spec.expect_rows} rows, got {rows}"
            elif spec.output is not None and not spec.output.exists():
                run["check_error"] = f"no output {spec.output.name}"
            elif spec.digest and spec.output is not None:
                run["output_digest"] = npy_digest(spec.output)
    finally:
        if spec.output is not None:
            spec.output.unlink(missing_ok=True)
    run.pop("report", None)  # the convert report: rows checked above, timings are ours
    return run


def _checked(tree: Tree, spec: TaskSpec, timeout: float, what: str) -> dict[str, Any]:
    run = run_task(tree, spec, timeout)
    if run["rc"] != 0 or "check_error" in run:
        raise SystemExit(f"{tree.role}: {what} failed (rc={run['rc']}) "
                         f"{run.get('check_error', '')}\n{run.get('stderr_tail', '')}")
    return run


def prepare_tree(tree: Tree, tasks: Sequence[str], data: Data, timeout: float,
                 quiet: bool) -> None:
    """Convert the tree's own store (for open/matrix) and run every task once, untimed, so
    its Numba cache and bytecode are warm before timing."""
    tree.cache_dir.mkdir(parents=True, exist_ok=True)
    tree.scratch.mkdir(parents=True, exist_ok=True)
    if {"open", "matrix"} & set(tasks):
        assert data.binary is not None
        store = tree.scratch / "store.emb"
        if not quiet:
            print(f"{tree.role}: converting {data.binary.path.name} -> {store}",
                  file=sys.stderr, flush=True)
        _checked(tree, TaskSpec(["embstore-cli", "convert", str(data.binary.path), str(store),
                                 "--json"], (), expect_rows=data.binary.rows), timeout,
                 "store conversion")
        tree.store = store
    for task in tasks:
        run = _checked(tree, task_spec(task, tree, data), timeout, f"warm-up {task}")
        if not quiet:
            print(f"{tree.role}: warm-up {task:<15} {run['wall_s']:9.3f} s", file=sys.stderr,
                  flush=True)


@contextlib.contextmanager
def spinner(core: int) -> Iterator[None]:
    """A busy loop pinned to ``core`` for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SPINNER % core],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the spinner did not start (rc={proc.poll()})")
        yield
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """All runs of one task under one load, both trees."""

    task: str
    load: str  # "idle" or "busy"
    runs: list[dict[str, Any]] = field(default_factory=list)


def run_all(trees: tuple[Tree, Tree], tasks: Sequence[str], loads: Sequence[str], data: Data,
            repeat: int, timeout: float, core: int, quiet: bool) -> list[Cell]:
    cells = {(t, ld): Cell(t, ld) for t in tasks for ld in loads}
    for rep in range(repeat):
        order = trees if rep % 2 == 0 else trees[::-1]
        for task in tasks:
            specs = {tree.role: task_spec(task, tree, data) for tree in trees}
            for load in loads:
                warm(sorted({p for s in specs.values() for p in s.inputs}))
                with spinner(core) if load == "busy" else contextlib.nullcontext():
                    for pos, tree in enumerate(order):
                        run = run_task(tree, specs[tree.role], timeout)
                        run.update(rep=rep, tree=tree.role, position=pos)
                        cells[task, load].runs.append(run)
                        if not quiet:
                            _progress(rep, task, load, tree, run)
    return list(cells.values())


def _progress(rep: int, task: str, load: str, tree: Tree, run: dict[str, Any]) -> None:
    bad = "" if run["rc"] == 0 and "check_error" not in run else \
        f"  FAILED rc={run['rc']} {run.get('check_error', '')}"
    print(f"[rep {rep + 1}] {task:<15} {load:<4} {tree.role:<4} {run['wall_s']:9.3f} s  "
          f"peak RSS {run['max_rss_mb']:8,.1f} MB{bad}", file=sys.stderr, flush=True)


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 6) if values else None


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": _median(values), "min": round(min(values), 6),
            "max": round(max(values), 6)}


def summarise(cells: Sequence[Cell]) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    failures: list[str] = []
    for cell in cells:
        ok: dict[str, dict[int, dict[str, Any]]] = {"base": {}, "head": {}}
        for r in cell.runs:
            if r["rc"] != 0 or "check_error" in r:
                failures.append(f"{cell.task} ({cell.load}) {r['tree']} rep {r['rep'] + 1}: "
                                f"rc={r['rc']} {r.get('check_error', '')} "
                                f"{r.get('stderr_tail', '')}".strip())
            else:
                ok[r["tree"]][r["rep"]] = r
        side: dict[str, Any] = {}
        for role, runs in ok.items():
            rs = list(runs.values())
            side[role] = {
                "n": len(rs),
                "wall_s": _stats([r["wall_s"] for r in rs]),
                "user_s": _median([r["user_s"] for r in rs]),
                "sys_s": _median([r["sys_s"] for r in rs]),
                "max_rss_mb": _stats([r["max_rss_mb"] for r in rs]),
            }
        pairs = sorted(set(ok["base"]) & set(ok["head"]))
        t_ratio = [ok["head"][p]["wall_s"] / ok["base"][p]["wall_s"] for p in pairs
                   if ok["base"][p]["wall_s"] > 0]
        m_ratio = [ok["head"][p]["max_rss_mb"] / ok["base"][p]["max_rss_mb"] for p in pairs
                   if ok["base"][p]["max_rss_mb"] > 0]
        entry: dict[str, Any] = {
            "task": cell.task, "load": cell.load, "base": side["base"], "head": side["head"],
            "ratio_time": _stats(t_ratio), "ratio_peak_rss": _stats(m_ratio),
            "pairs": len(pairs), "runs": cell.runs,
        }
        distinct = {r["output_digest"] for r in cell.runs if "output_digest" in r}
        if distinct:
            entry["outputs_identical"] = len(distinct) == 1
            if len(distinct) > 1:
                failures.append(f"{cell.task} ({cell.load}): base and head wrote different "
                                f"matrices ({len(distinct)} distinct outputs)")
        out.append(entry)
    return out, failures


# -- reporting --------------------------------------------------------------------------------


def _f(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def _range(s: dict[str, float | None], digits: int = 3) -> str:
    return "-" if s["min"] is None else f"{_f(s['min'], digits)}-{_f(s['max'], digits)}"


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    m = results["machine"]
    base, head = results["trees"]["base"], results["trees"]["head"]

    def side(t: dict[str, Any]) -> str:
        where = "working tree" if t["spec"] == WORKTREE else f"`{t['spec']}`"
        return f"{where} {t['label']} ({t['path']})"

    lines = [
        f"# embstore A/B: {cfg['size']} ({cfg['words']:,} words x {cfg['dim']})",
        "",
        f"Base: {side(base)}.  Head: {side(head)}.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; Python "
        f"{m['python']}, NumPy {m['numpy']}, Numba {m['numba']}; {m['date']}.",
        "",
        f"{cfg['repeat']} repetition(s); each task runs base and head back to back (head "
        "first on odd repetitions), whole processes from spawn to exit.  Times and peak RSS "
        "are medians; head/base is the median of the per-repetition ratios, and its range "
        "(min-max over repetitions) is the noise of this run."
        + (f"  `busy`: a spinner process pinned to core {cfg['busy_core']} runs during the "
           "measurement." if "busy" in cfg["loads"] else ""),
        "",
        "| Task | Load | Base (s) | Head (s) | Head/base | Ratio range | Base min-max (s) "
        "| Head min-max (s) | Base peak RSS (MB) | Head peak RSS (MB) | RSS head/base |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results["tasks"]:
        b, h = e["base"], e["head"]
        rt, rm = e["ratio_time"], e["ratio_peak_rss"]
        ratio = "-" if rt["median"] is None else f"{rt['median']:.3f}"
        rss_ratio = "-" if rm["median"] is None else f"{rm['median']:.3f}"
        lines.append(
            f"| {e['task']} | {e['load']} | {_f(b['wall_s']['median'])} | "
            f"{_f(h['wall_s']['median'])} | {ratio} | {_range(rt)} | {_range(b['wall_s'])} | "
            f"{_range(h['wall_s'])} | {_f(b['max_rss_mb']['median'], 1)} | "
            f"{_f(h['max_rss_mb']['median'], 1)} | {rss_ratio} |")
    lines.append("")
    d = results["data"]
    notes = []
    if d.get("binary"):
        notes.append(f"word2vec binary {d['binary']['rows']:,} rows, "
                     f"{d['binary']['bytes'] / 1e6:,.1f} MB (convert-binary; each tree's store "
                     "for open and matrix is converted from it)")
    if d.get("text"):
        notes.append(f"word2vec text {d['text']['rows']:,} rows, "
                     f"{d['text']['bytes'] / 1e6:,.1f} MB (convert-text)")
    if d.get("vocab"):
        v = d["vocab"]
        notes.append(f"matrix: {v['rows']:,}-word vocabulary, {v['hits']:,} found, "
                     f"--fallback {FALLBACKS}")
    if notes:
        lines += ["Inputs: " + "; ".join(notes) + ".", ""]
    same = [e["outputs_identical"] for e in results["tasks"] if "outputs_identical" in e]
    if same:
        lines += ["Base and head wrote the same matrix." if all(same)
                  else "**Base and head wrote different matrices.**", ""]
    if results["failures"]:
        lines += ["## Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Whole-process A/B benchmark of embstore at two "
                                            "git revisions.")
    p.add_argument("--base", required=True, help="git revision to compare against")
    p.add_argument("--head", default=WORKTREE,
                   help=f"git revision, or {WORKTREE} (default): this checkout's working tree, "
                        "uncommitted changes included")
    p.add_argument("--size", choices=sorted(SIZES), default="tiny",
                   help="tiny (1k words), small (100k), 1m, 3m; default tiny")
    p.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    p.add_argument("--tasks", default=",".join(TASKS),
                   help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--text-rows", type=generate.parse_count, default=None,
                   help="rows of the text file for convert-text (default: the size's own)")
    p.add_argument("--vocab-size", type=generate.parse_count, default=DEFAULT_VOCAB,
                   help="vocabulary of the matrix task (default 200k)")
    p.add_argument("--busy", action="store_true",
                   help="also measure everything with a busy loop pinned to --busy-core")
    p.add_argument("--busy-core", type=int, default=1, help="core of the spinner (default 1)")
    p.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    p.add_argument("--data-dir", type=Path, default=None,
                   help="cache of generated inputs (default benchmarks/data or "
                        "$EMBSTORE_BENCH_DATA)")
    p.add_argument("--scratch-dir", type=Path, default=None,
                   help="where the stores and outputs are written while measured (default: the "
                        "system temporary directory); deleted at the end")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="directory for the results (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per process")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    args.task_list = [t for t in TASKS if t in args.tasks.split(",")]
    unknown = sorted(set(filter(None, args.tasks.split(","))) - set(TASKS))
    if unknown or not args.task_list:
        p.error(f"unknown or no task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.busy:
        allowed = os.sched_getaffinity(0)
        if args.busy_core not in allowed or len(allowed) < 2:
            p.error(f"--busy needs core {args.busy_core} and at least one other core "
                    f"(this process may use {sorted(allowed)})")
    return args


def prepare_data(args: argparse.Namespace, data_dir: Path) -> Data:
    cfg = SIZES[args.size]
    kw: dict[str, Any] = {"seed": args.seed, "data_dir": data_dir, "quiet": args.quiet}
    tasks = set(args.task_list)
    binary = (generate.vector_file("binary", cfg.words, **kw)
              if tasks & {"convert-binary", "open", "matrix"} else None)
    text = (generate.vector_file("text", args.text_rows or cfg.text_rows, **kw)
            if "convert-text" in tasks else None)
    vocab = generate.vocab_file(cfg.words, args.vocab_size, **kw) if "matrix" in tasks else None
    probe = generate.make_words(min(cfg.words, 1000), args.seed)[-1] if "open" in tasks else ""
    return Data(binary, text, vocab, probe)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cfg = SIZES[args.size]
    data_dir = Path(args.data_dir or generate.default_data_dir()).resolve()
    out_dir = args.out.resolve()
    trees = (make_tree("base", args.base, args.quiet), make_tree("head", args.head, args.quiet))
    if trees[0].path == trees[1].path:
        print(f"base and head are the same tree ({trees[0].path}): an A/A run",
              file=sys.stderr, flush=True)
    for tree in trees:
        check_import(tree)
    data = prepare_data(args, data_dir)
    loads = ("idle", "busy") if args.busy else ("idle",)
    scratch_dir = args.scratch_dir.resolve() if args.scratch_dir else None
    scratch = Path(tempfile.mkdtemp(prefix="embstore-ab-scratch-", dir=scratch_dir))
    try:
        for tree in trees:
            tree.scratch = scratch / tree.role
            tree.fingerprint_start = fingerprint(tree.path)
        for tree in trees:
            prepare_tree(tree, args.task_list, data, args.timeout, args.quiet)
        cells = run_all(trees, args.task_list, loads, data, args.repeat, args.timeout,
                        args.busy_core, args.quiet)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary, failures = summarise(cells)
    for tree in trees:
        tree.fingerprint_end = fingerprint(tree.path)
        if tree.fingerprint_end != tree.fingerprint_start:
            failures.append(f"{tree.role}: the sources under {tree.path / 'embstore'} changed "
                            "during the run; its timings mix two versions")

    def file_info(f: generate.GeneratedFile | None) -> dict[str, Any] | None:
        return None if f is None else {"path": str(f.path), "rows": f.rows,
                                       "bytes": f.meta["bytes"]}

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "machine": machine_info(),
        "config": {
            "size": args.size, "words": cfg.words, "dim": generate.DIM, "repeat": args.repeat,
            "tasks": args.task_list, "loads": list(loads), "busy_core": args.busy_core,
            "seed": args.seed, "vocab_size": args.vocab_size,
            "command": " ".join(sys.argv), "python": sys.executable,
            "started": started,
            "seconds": round(time.perf_counter() - t0, 1),
        },
        "trees": {t.role: t.info() for t in trees},
        "data": {
            "binary": file_info(data.binary),
            "text": file_info(data.text),
            "vocab": (None if data.vocab is None else
                      {"path": str(data.vocab.path), "rows": data.vocab.meta["rows"],
                       "hits": data.vocab.meta["hits"]}),
            "probe_word": data.probe,
        },
        "tasks": summary,
        "failures": failures,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"ab-{args.size}.json"
    md_path = out_dir / f"ab-{args.size}.md"
    json_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    text = markdown(results)
    md_path.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {json_path}, {md_path}", file=sys.stderr)
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
