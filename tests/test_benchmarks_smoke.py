"""The benchmark runner end to end at the tiny size, so that it cannot silently rot.

Only the outputs' presence and shape are checked (JSON, Markdown table, PNG chart, every task
group and tool present, every measured process exited cleanly, the tools' matrices equal);
timings on a CI machine mean nothing and are never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gensim")
pytest.importorskip("matplotlib")
pytest.importorskip("numba")

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "benchmarks" / "run.py"

EXPECTED = {
    "convert-binary": {"embstore", "gensim", "floor"},
    "convert-text": {"embstore", "floor"},
    "convert-text-cap": {"embstore", "gensim", "floor"},
    "open": {"embstore", "embstore-batch", "gensim-mmap", "gensim"},
    "matrix-2k": {"embstore", "gensim", "gensim-mmap", "numpy"},
    "matrix-20k": {"embstore", "gensim", "gensim-mmap", "numpy"},
    "share": {"embstore", "gensim-mmap", "gensim"},
    "jit": {"matrix-cold", "matrix-warm"},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    base = tmp_path_factory.mktemp("bench")
    out = base / "results"
    cmd = [sys.executable, str(RUNNER), "--size", "tiny", "--repeat", "1", "--workers", "2",
           "--out", str(out), "--data-dir", str(base / "data"),
           # a cap below the text size exercises the separate capped-text group too
           "--gensim-text-rows", "500",
           # one cold compile is enough to exercise the JIT task; all three take ~20 s
           "--jit", "matrix",
           # the matrix code does not depend on the vocabulary size, and against a 1k-word
           # store a 400k vocabulary only adds seconds of misses
           "--vocab-sizes", "2k,20k"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    return out, proc


def test_runner_exits_cleanly(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, proc = tiny_run
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_results_json_has_every_task(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = tiny_run
    results = json.loads((out / "bench-tiny.json").read_text(encoding="utf-8"))
    for key in ("cpu", "cores", "ram_gib", "python", "numpy", "numba", "gensim", "date"):
        assert key in results["machine"]
    assert results["config"]["size"] == "tiny"
    groups = {g["name"]: g for g in results["groups"]}
    assert set(groups) == set(EXPECTED)
    for name, tools in EXPECTED.items():
        contenders = {c["name"]: c for c in groups[name]["contenders"]}
        assert set(contenders) == tools, name
        for c in contenders.values():
            assert len(c["runs"]) == 1
            assert c["runs"][0]["rc"] == 0, (name, c["name"], c["runs"][0].get("stderr_tail"))
            assert c["median"]["primary_s"] is not None
            assert c["median"]["max_rss_mb"] > 0
    assert results["failures"] == []
    for name in ("matrix-2k", "matrix-20k"):
        assert groups[name]["outputs_identical"] is True
    share = {c["name"]: c for c in groups["share"]["contenders"]}
    assert all(c["median"]["sum_pss_mb"] > 0 for c in share.values())
    ratios = {c["name"]: c["ratios"] for c in groups["convert-binary"]["contenders"]}
    assert set(ratios["embstore"]) == {"floor", "gensim"}


def test_table_and_chart(tiny_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = tiny_run
    table = (out / "bench-tiny.md").read_text(encoding="utf-8")
    assert table in proc.stdout
    for title in ("Convert word2vec binary", "Convert word2vec text", "Convert text, first 500",
                  "Open + one lookup", "Matrix for a 2k vocabulary",
                  "Matrix for a 20k vocabulary", "workers sharing", "JIT compile"):
        assert title in table
    assert "| embstore convert |" in table
    png = (out / "bench-tiny.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
