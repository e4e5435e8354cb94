"""The ``embstore`` command line: convert, info, get, verify, --version, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embstore
from embstore import format as fmt
from embstore.cli import main

TEXT = "3 4\nthe 0.1 -0.25 3e-5 1\nof 1.5 2 -0 4\nNew\u00a0York 7 8 9 10\n"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "vectors.vec"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path, src: Path) -> Path:
    dst = tmp_path / "vectors.emb"
    assert main(["convert", str(src), str(dst), "--quiet"]) == 0
    return dst


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("embstore: error: "), err
    assert "Traceback" not in err
    return lines[0]


def exe() -> str:
    found = shutil.which("embstore", path=os.path.dirname(sys.executable))
    assert found, "the embstore console script is installed with the package"
    return found


# -- convert -------------------------------------------------------------------------------


def test_convert_prints_a_summary(tmp_path: Path, src: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "out.emb"
    assert main(["convert", str(src), str(dst)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("Converted 3 words x 4 (word2vec text) from ")
    assert str(dst) in out and len(out.splitlines()) == 1
    with embstore.open(dst) as s:
        assert list(s.words) == ["the", "of", "New\u00a0York"]


def test_convert_json_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "glove.txt"
    src.write_text("a 1 2\nb 3 4\nb 5 6\nbad 1\nc 7 8\n")
    dst = tmp_path / "out.emb"
    code = main(["convert", str(src), str(dst), "--json", "--format", "glove", "--limit", "4",
                 "--on-bad-line", "skip", "--unicode-errors", "replace"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 2 and report["records"] == 4 and report["duplicates"] == 1
    assert report["skipped_lines"] == 1 and report["format"] == "glove"
    assert report["skipped_examples"] == ["line 4: expected 2 values after the word, found 1"]


def test_convert_shows_skipped_examples(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "v.txt"
    src.write_text("a 1 2\nb 1\nc 3 4\n")
    assert main(["convert", str(src), str(tmp_path / "o.emb"), "--on-bad-line", "skip"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "1 bad lines skipped" in out[0]
    assert out[1] == "  skipped line 2: expected 2 values after the word, found 1"


def test_convert_quiet_prints_nothing(tmp_path: Path, src: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(src), str(tmp_path / "o.emb"), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_convert_force(tmp_path: Path, src: Path, store: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["convert", str(src), str(store), "--quiet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(store) in line and "--force" in line
    assert main(["convert", str(src), str(store), "--quiet", "--force"]) == 0


@pytest.mark.parametrize(("content", "fragment"), [
    ("2 2\nthe 1 2\nof 1\n", ":3: expected 2 values after the word, found 1"),
    ("2 2\nthe 1 2\nof 1 x\n", ":3: field 3: expected a number, found 'x'"),
    ("2 2\nthe 1 nan\nof 1 2\n", ":2: field 3: value 'nan' is not finite"),
    ("", "the file is empty"),
])
def test_convert_errors_are_one_line(content: str, fragment: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.txt"
    src.write_text(content)
    assert main(["convert", str(src), str(tmp_path / "o.emb")]) == 1
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert f"embstore: error: {src}" in line and fragment in line
    assert out == ""
    assert sorted(os.listdir(tmp_path)) == ["bad.txt"]


def test_missing_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(tmp_path / "nope.txt"), str(tmp_path / "o.emb")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "nope.txt") in line and "No such file" in line


@pytest.mark.parametrize("argv", [
    ["convert", "a.txt"],
    ["convert", "a.txt", "b.emb", "--limit", "0"],
    ["convert", "a.txt", "b.emb", "--format", "csv"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


# -- info --------------------------------------------------------------------------------------


def test_info(store: Path, src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(store)
    assert "format     embstore 1.0" in out and "words      3" in out and "dim        4" in out
    assert f"source     {src.name} (text" in out
    assert "converted  3 records, 0 duplicates dropped, 0 bad lines skipped" in out


def test_info_json(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(store), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["words"] == 3 and d["dim"] == 4 and d["format_version"] == "1.0"
    assert d["file_bytes"] == store.stat().st_size
    assert d["index_slots"] == fmt.slot_count(3)
    assert set(d["sections"]) == {k.name.lower() for k in fmt.SECTION_ORDER}
    assert d["sections"]["vectors"] == {"offset": 4096, "bytes": 3 * 4 * 4}
    assert d["metadata"]["source"]["name"] == "vectors.vec"


@pytest.mark.parametrize("damage", ["missing", "text", "truncated", "version"])
def test_info_on_a_bad_store_is_one_line(damage: str, tmp_path: Path, store: Path,
                                         src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = store
    if damage == "missing":
        target = tmp_path / "missing.emb"
    elif damage == "text":
        target = src
    elif damage == "truncated":
        store.write_bytes(store.read_bytes()[:5000])
    else:
        raw = bytearray(store.read_bytes())
        raw[8] = 2
        store.write_bytes(bytes(raw))
    assert main(["info", str(target)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(target) in line


# -- get ---------------------------------------------------------------------------------------


def test_get_prints_exact_values(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", str(store), "the", "New\u00a0York"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["the 0.1 -0.25 0.00003 1", "New\u00a0York 7 8 9 10"]
    with embstore.open(store) as s:
        for line in lines:
            word, *values = line.rsplit(" ", 4)
            parsed = np.array([np.float32(float(v)) for v in values], dtype=np.float32)
            assert np.array_equal(parsed.view(np.uint32), s[word].view(np.uint32))


def test_get_negative_zero_round_trips(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", str(store), "of"]) == 0
    assert capsys.readouterr().out == "of 1.5 2 -0 4\n"


def test_get_missing_word_exits_1(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", str(store), "the", "absent", "of"]) == 1
    out, err = capsys.readouterr()
    assert [ln.split()[0] for ln in out.splitlines()] == ["the", "of"]
    assert err.splitlines() == [f"embstore: 'absent' is not in {store}"]


# -- verify ------------------------------------------------------------------------------------


def test_verify_ok(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{store}: OK (3 words x 4, 1 blocks checked")


def test_verify_json(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(store), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is True and d["problems"] == [] and d["rows"] == 3 and d["blocks_checked"] == 1


@pytest.mark.parametrize("offset", [4096 + 5, 8192 + 3, -3])
def test_verify_detects_a_flipped_byte(offset: int, store: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    raw = bytearray(store.read_bytes())
    raw[offset] ^= 0x40
    store.write_bytes(bytes(raw))
    assert main(["verify", str(store)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == f"embstore: {store}: store is damaged"
    assert len(lines) >= 2 and all(ln.startswith("  ") for ln in lines[1:])  # the problems
    assert out == "" and "Traceback" not in err
    assert main(["verify", str(store), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is False and d["problems"]


def test_verify_on_a_damaged_header(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = bytearray(store.read_bytes())
    raw[30] ^= 1
    store.write_bytes(bytes(raw))
    assert main(["verify", str(store)]) == 1
    err = capsys.readouterr().err
    assert "store is damaged" in err and "header checksum mismatch" in err


# -- the installed console script --------------------------------------------------------------


def test_console_script_version_and_errors(tmp_path: Path, store: Path) -> None:
    run = subprocess.run([exe(), "--version"], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stdout.strip() == f"embstore {embstore.__version__}"
    bad = tmp_path / "bad.vec"
    bad.write_text("3 3\nthe 1 2 3\nof 1 2\nand 1 2 3\n")  # not the last line: not truncation
    run = subprocess.run([exe(), "convert", str(bad), str(tmp_path / "o.emb")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 1 and run.stdout == ""
    line = one_error_line(run.stderr)
    assert line == (f"embstore: error: {bad}:3: expected 3 values after the word, found 2; "
                    "the dimension comes from the header; or skip bad lines with "
                    "--on-bad-line skip")
    run = subprocess.run([exe(), "get", str(store), "of"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0 and run.stdout == "of 1.5 2 -0 4\n"


def test_python_dash_m(store: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "embstore", "info", str(store), "--json"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0 and json.loads(run.stdout)["words"] == 3


@pytest.mark.parametrize(("library", "cli_text"), [
    ('or skip bad lines with on_bad_line="skip"', "or skip bad lines with --on-bad-line skip"),
    ("limit=3381 converts what is there", "--limit 3381 converts what is there"),
    ("pass force=True to replace it", "pass --force to replace it"),
    ('use unicode_errors="replace" or unicode_errors="ignore"',
     "use --unicode-errors replace or --unicode-errors ignore"),
    ("for a file without a header use format='glove'", "for a file without a header use --format glove"),
    ("fallbacks=lower,title", "--fallback lower,title"),
    ("a value x=3 and dim=4 stay", "a value x=3 and dim=4 stay"),
])
def test_library_hints_become_flags(library: str, cli_text: str) -> None:
    from embstore.cli import as_flags

    assert as_flags(library) == cli_text
