"""`embstore matrix` end to end, in a subprocess, against the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embstore

gensim = pytest.importorskip("gensim")
GENSIM_DATA = Path(gensim.__file__).parent / "test" / "test_data"

WORD_INDEX = {"the": 1, "of": 2, "said": 3, "australia": 4, "sydney": 5, "qwertyuiop": 6,
              "government": 8, "zzzz": 9, "The": 10}
TOKENS = ["", "[UNK]", "the", "Australia", "qwertyuiop", "said", "sydney", "naïve"]


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "embstore", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("embstore: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    dst = tmp_path_factory.mktemp("cli-store") / "lee.emb"
    embstore.convert(GENSIM_DATA / "lee_fasttext.vec", dst, quiet=True)
    return dst


@pytest.fixture(scope="module")
def store(store_path):
    with embstore.open(store_path) as s:
        yield s


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-vocab")
    (d / "word_index.json").write_text(json.dumps(WORD_INDEX), encoding="utf-8")
    (d / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    (d / "tokens.json").write_text(json.dumps(TOKENS, ensure_ascii=False), encoding="utf-8")
    return d


@pytest.mark.parametrize(("vocab", "cli_options", "api_options"), [
    ("word_index.json", [], {}),
    ("word_index.json", ["--num-words", "5"], {"num_words": 5}),
    ("word_index.json", ["--fallback", "lower,title,upper", "--oov", "mean"],
     {"fallbacks": ["lower", "title", "upper"], "oov": "mean"}),
    ("tokens.txt", ["--oov", "random", "--seed", "7", "--fallback", "title"],
     {"oov": "random", "seed": 7, "fallbacks": ["title"]}),
    ("tokens.json", ["--oov", "random"], {"oov": "random", "seed": 0}),
])
def test_npy_and_report_equal_the_python_api(store_path, store, vocab_files, tmp_path, vocab,
                                             cli_options, api_options):
    out = tmp_path / "matrix.npy"
    report = tmp_path / "report.json"
    proc = run_cli("matrix", store_path, vocab_files / vocab, "--out", out, "--report", report,
                   *cli_options)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    expected = store.build_matrix(vocab_files / vocab, **api_options)
    got = np.load(out)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.matrix)
    assert proc.stdout == f"{expected.summary()} -> {out}\n"
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["hits"] == expected.hits
    assert data["misses"] == expected.misses
    assert data["missing"] == expected.missing
    assert data["fallback_hits"] == expected.fallback_hits
    assert (data["rows"], data["dim"], data["oov"]) == (expected.rows, 10, expected.oov)
    assert data["coverage"] == pytest.approx(expected.coverage, abs=1e-6)
    assert (data["store"], data["vocab"], data["out"]) == (str(store_path),
                                                            str(vocab_files / vocab), str(out))
    assert sorted(os.listdir(tmp_path)) == ["matrix.npy", "report.json"]  # no temporaries


def test_report_values_by_hand(store_path, vocab_files, tmp_path):
    report = tmp_path / "r.json"
    proc = run_cli("matrix", store_path, vocab_files / "word_index.json", "--out",
                   tmp_path / "m.npy", "--report", report, "--fallback", "title")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    # 'australia' and 'sydney' are capitalised in lee_fasttext.vec
    assert data["missing"] == ["qwertyuiop", "zzzz"]
    assert data["fallback_hits"] == {"title": 2}
    assert (data["hits"], data["misses"], data["rows"]) == (7, 2, 11)


def test_existing_output_is_replaced_only_with_force(store_path, vocab_files, tmp_path):
    out = tmp_path / "m.npy"
    np.save(out, np.zeros((2, 2), dtype=np.float32))
    before = out.read_bytes()
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", out)
    assert_one_line_error(proc, f"{out}: destination already exists; pass --force to replace it")
    assert out.read_bytes() == before
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", out, "--force")
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (len(TOKENS), 10)
    assert sorted(os.listdir(tmp_path)) == ["m.npy"]


def test_force_replaces_only_a_npy_file(store_path, vocab_files, tmp_path):
    out = tmp_path / "m.npy"
    out.write_bytes(b"old")
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", out, "--force")
    assert_one_line_error(proc, f"{out} exists and is not a .npy file; refusing to replace it "
                                "even with --force")
    assert out.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["m.npy"]


def test_console_script(store_path, vocab_files, tmp_path):
    script = Path(sys.executable).parent / "embstore"
    if not script.exists():
        pytest.skip("embstore console script not installed next to this Python")
    out = tmp_path / "m.npy"
    proc = subprocess.run([str(script), "matrix", str(store_path),
                           str(vocab_files / "word_index.json"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (11, 10)


# -- errors: one line on stderr, exit 1, nothing left behind ----------------------------------------


def test_error_missing_store(vocab_files, tmp_path):
    proc = run_cli("matrix", tmp_path / "absent.emb", vocab_files / "tokens.txt", "--out",
                   tmp_path / "m.npy")
    assert_one_line_error(proc, "absent.emb", "No such file")
    assert os.listdir(tmp_path) == []


def test_error_not_a_store(vocab_files, tmp_path):
    proc = run_cli("matrix", vocab_files / "tokens.json", vocab_files / "tokens.txt", "--out",
                   tmp_path / "m.npy")
    assert_one_line_error(proc, "not an embstore store")
    assert os.listdir(tmp_path) == []


def test_error_damaged_store(store_path, vocab_files, tmp_path):
    damaged = tmp_path / "damaged.emb"
    damaged.write_bytes(store_path.read_bytes()[:-100])
    proc = run_cli("matrix", damaged, vocab_files / "tokens.txt", "--out", tmp_path / "m.npy")
    assert_one_line_error(proc, "truncated")
    assert sorted(os.listdir(tmp_path)) == ["damaged.emb"]


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("absent.json", None, "No such file"),
    ("bad.json", "{'the': 1}", "not valid JSON"),
    ("values.json", '{"the": "1"}', "must be ints"),
    ("empty.txt", "", "empty"),
    ("latin1.txt", b"caf\xe9\n", "not UTF-8"),
])
def test_error_bad_vocabulary(store_path, tmp_path, name, content, fragment):
    vocab = tmp_path / "in" / name
    vocab.parent.mkdir()
    if content is not None:
        vocab.write_bytes(content if isinstance(content, bytes) else content.encode())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_cli("matrix", store_path, vocab, "--out", out_dir / "m.npy", "--report",
                   out_dir / "r.json")
    assert_one_line_error(proc, fragment)
    assert os.listdir(out_dir) == []


def test_error_unknown_fallback(store_path, vocab_files, tmp_path):
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", tmp_path / "m.npy",
                   "--fallback", "lower,snake")
    assert_one_line_error(proc, "unknown fallback 'snake'")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["out-dir", "out-is-dir", "report-dir"])
def test_error_bad_output_location(store_path, vocab_files, tmp_path, where):
    out, report = tmp_path / "m.npy", tmp_path / "r.json"
    if where == "out-dir":
        out = tmp_path / "no" / "such" / "m.npy"
    elif where == "out-is-dir":
        out = tmp_path
    else:
        report = tmp_path / "no" / "r.json"
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", out,
                   "--report", report)
    assert_one_line_error(proc)
    assert ".tmp-" not in proc.stderr  # the user's path is named, not a temporary
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [
    ["--num-words", "0"], ["--num-words", "x"], ["--oov", "gaussian"], ["--seed", "one"],
])
def test_usage_errors(store_path, vocab_files, tmp_path, args):
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt", "--out", tmp_path / "m.npy",
                   *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("embstore: error: ")
    assert os.listdir(tmp_path) == []


def test_out_is_required(store_path, vocab_files):
    proc = run_cli("matrix", store_path, vocab_files / "tokens.txt")
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "Traceback" not in proc.stderr
