"""Damaged and hostile store files: every read path either works or raises FormatError.

Each damaged store is opened and read through every public path -- ``open``, ``[]``,
``get``, ``in``, ``get_index``, ``lookup``, ``build_matrix`` (every OOV mode), iteration
over ``words``, ``words[i]`` and slices, ``metadata``, ``mean``/``std``, the mapped vectors,
``embstore info`` and ``embstore get`` -- in a child process, so a segfault, SIGBUS or hang
is caught and attributed to its case.  ``embstore.verify`` and ``embstore verify`` must call
every accidentally damaged store damaged.

Damage comes in four families:

* random accidents: truncation, appended bytes, single bit flips and overwritten runs
  (zeros, 0xFF, random) in every section, padding and the header;
* forged headers: one field set to an absurd value (huge sizes, offsets past the end,
  zero counts, wrong kinds) with the header CRC recomputed, so the damage reaches the
  structural validation behind the CRC;
* forged content: index entries, word offsets, words, vectors, statistics and metadata
  made inconsistent, with every block checksum and the header CRC recomputed -- what a
  hostile file looks like; ``verify``'s structural checks must still catch it;
* benign forgeries: fields a reader ignores (minor version, flags, reserved words)
  changed with the CRC recomputed; the store must read exactly as before.

``EMBSTORE_DAMAGE_SCALE=10`` multiplies the number of random positions for a longer run.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import relutil
from relutil import HEADER_FIELDS, SECTION_NAMES, sections

SCALE = relutil.env_int("EMBSTORE_DAMAGE_SCALE", 1)


def _regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Every byte range of a store: header, sections and the padding between them."""
    secs = sections(data)
    regions = {"header": (0, 4096)}
    ordered = [(name, *secs[name]) for name in SECTION_NAMES]
    for k, (name, off, length) in enumerate(ordered):
        if length:
            regions[name] = (off, off + length)
        nxt = ordered[k + 1][1] if k + 1 < len(ordered) else len(data)
        if nxt > off + length:
            regions[f"padding after {name}"] = (off + length, nxt)
    return regions


def accidental_damage(data: bytes, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    size = len(data)
    specs: list[dict[str, Any]] = []
    regions = _regions(data)
    # truncation at section boundaries, inside the header and at random points
    cuts = {0, 1, 8, 71, 72, 4095, 4096, 4097, size - 1, size - 8}
    for _name, (a, b) in regions.items():
        cuts |= {a, a + 1, b - 1}
    cuts |= {rng.randrange(size) for _ in range(20 * SCALE)}
    specs += [{"kind": "truncate", "size": c} for c in sorted(cuts) if 0 <= c < size]
    specs += [{"kind": "append", "len": n, "fill": f} for n, f in ((1, 0), (4096, 0), (7, 0xFF))]
    # single bit flips: both ends and random positions of every region, every field
    for _name, (a, b) in regions.items():
        positions = {a, b - 1} | {rng.randrange(a, b) for _ in range(10 * SCALE)}
        specs += [{"kind": "flip", "pos": p, "bit": rng.randrange(8)} for p in sorted(positions)]
    for off, fmt in set(HEADER_FIELDS.values()):
        specs.append({"kind": "flip", "pos": off + rng.randrange(struct.calcsize(fmt)),
                      "bit": rng.randrange(8)})
    specs.append({"kind": "flip", "pos": relutil.OFF_CRC, "bit": 0})
    # overwritten runs
    for _name, (a, b) in regions.items():
        for _ in range(3 * SCALE):
            for fill in ("zeros", "ff", "random"):
                n = rng.choice((4, 16, 256, 4096))
                specs.append({"kind": "overwrite", "pos": rng.randrange(a, b), "len": n,
                              "fill": fill, "seed": rng.randrange(1 << 30)})
    return specs


def forged_headers(data: bytes) -> list[dict[str, Any]]:
    size = len(data)
    hdr = {name: struct.unpack_from(fmt, data, off)[0] for name, (off, fmt) in HEADER_FIELDS.items()}
    n, dim, slots = hdr["n_rows"], hdr["dim"], hdr["n_slots"]
    huge = [1 << 32, (1 << 63), (1 << 64) - 1, 0xFFFFFFFE, 0xFFFFFFFF]
    values: dict[str, list[int]] = {
        "major": [0, 2, 0xFFFF],
        "minor": [1, 0xFFFF],
        "header_length": [0, 4095, 8192],
        "file_length": [0, size - 1, size + 1, size + 4096, *huge],
        "n_rows": [0, 1, n - 1, n + 1, slots, *huge],
        "dim": [0, 1, dim - 1, dim + 1, 1 << 20, (1 << 20) + 1, *huge],
        "dtype": [0, 2, 0xFFFFFFFF],
        "hash_id": [0, 2],
        "n_slots": [0, 1, 3, n, slots // 2, slots * 2, slots + 1, 1 << 40, 1 << 62, 1 << 63],
        "block_log2": [0, 12, 19, 21, 63, 64, 0xFFFFFFFF],
        "n_sections": [0, 1, 6, 8, 0xFFFFFFFF],
        "flags": [1, 0xFFFFFFFF],
    }
    for name in SECTION_NAMES:
        off, length = hdr[f"{name}.offset"], hdr[f"{name}.length"]
        values[f"{name}.kind"] = [0, 99, (SECTION_NAMES.index(name) + 1) % 7 + 1]
        values[f"{name}.reserved1"] = [7]
        values[f"{name}.reserved2"] = [1 << 40]
        values[f"{name}.offset"] = [0, 4096, off - 4096, off + 1, off + 4096, size, size + 4096,
                                    *huge]
        values[f"{name}.length"] = [0, length - 1, length + 1, length + 8, length + 4096,
                                    1 << 40, *huge]
    specs = []
    for field, vals in values.items():
        for v in vals:
            if v < 0 or v == hdr[field]:
                continue
            specs.append({"kind": "header", "field": field, "value": v,
                          "benign": field in relutil.BENIGN_FIELDS})
    # unused header bytes are covered by the CRC, and mean nothing once it is recomputed
    for pos in (100, 400, 4095):
        specs.append({"kind": "bytes", "pos": pos, "hex": "ff", "benign": True, "recrc": True})
    # the same damage without recomputing the CRC must fail the CRC check
    specs += [{"kind": "header", "field": f, "value": 1 << 33, "recrc": False}
              for f in ("n_rows", "file_length", "vectors.offset", "index.length")]
    return specs


def _slot_rows(data: bytes) -> tuple[int, np.ndarray]:
    off, length = sections(data)["index"]
    return off, np.frombuffer(data, dtype="<u4", count=length // 4, offset=off).reshape(-1, 2)


def forged_content(data: bytes, words: list[str]) -> list[dict[str, Any]]:
    """Hostile content behind valid checksums: each must be refused or contained by the
    readers' bounds checks, and caught by verify's structural checks."""
    secs = sections(data)
    specs: list[dict[str, Any]] = []

    def put(pos: int, raw: bytes, **extra: Any) -> None:
        specs.append({"kind": "bytes", "pos": pos, "hex": raw.hex(), "forge": True, **extra})

    idx_off, table = _slot_rows(data)
    occupied = np.flatnonzero(table[:, 1])
    empty = np.flatnonzero(table[:, 1] == 0)
    s0 = int(occupied[0])
    put(idx_off + 8 * s0 + 4, struct.pack("<I", 0xFFFFFFFF))  # row id past the end
    n = len(words)
    # a slot whose fingerprint matches its word's but whose row is n (one past the end)
    put(idx_off + 8 * int(occupied[5]) + 4, struct.pack("<I", n + 1))
    put(idx_off + 8 * int(occupied[6]) + 4, struct.pack("<I", 0))  # hole in a probe chain
    # every slot occupied: probes for absent words never meet an empty slot
    full = table.copy()
    full[empty] = (0x1234567, 1)
    put(idx_off, full.astype("<u4").tobytes())
    # index entries all pointing at row 0 with matching fingerprints
    same = table.copy()
    same[occupied, 1] = 1
    put(idx_off, same.astype("<u4").tobytes())
    woff = secs["word_offsets"][0]
    put(woff + 8 * 5, struct.pack("<Q", 1 << 63))  # an offset far past the word bytes
    put(woff + 8 * 5, struct.pack("<Q", (1 << 64) - 1))
    offs = np.frombuffer(data, dtype="<u8", count=n + 1, offset=woff)
    put(woff + 8 * 5, struct.pack("<Q", int(offs[7]) + 3))  # out of order
    put(woff + 8 * (n - 1), struct.pack("<Q", int(offs[n]) + 1))  # last row past the end
    put(woff, struct.pack("<Q", 1))  # first offset not 0 (checked at open)
    put(woff + 8 * n, struct.pack("<Q", int(offs[n]) - 1))  # last offset short (open)
    wb = secs["word_bytes"][0]
    put(wb + int(offs[3]), b"\xff")  # invalid UTF-8 in word 3
    put(wb + int(offs[4]), b"\xed\xa0\x80")  # an encoded surrogate
    # two rows with the same word (a duplicate the index cannot tell apart)
    by_len: dict[int, int] = {}
    for r, w in enumerate(words):
        k = len(w.encode())
        if k in by_len:
            put(wb + int(offs[r]), words[by_len[k]].encode())
            break
        by_len[k] = r
    vec = secs["vectors"][0]
    dim = secs["stats"][1] // 16
    put(vec + 4 * dim * 3, struct.pack("<f", float("nan")))
    put(vec + 4 * dim * 4 + 4, struct.pack("<f", float("inf")))
    st = secs["stats"][0]
    put(st, struct.pack("<d", float("nan")))  # mean[0]
    put(st + 8 * dim, struct.pack("<d", -1.0))  # std[0] negative
    put(st + 8 * dim + 8, struct.pack("<d", float("inf")))  # std[1]
    # finite statistics that no float32 data can have: read paths must cope; verify checks
    # structure, not plausibility, so it may pass them
    put(st, struct.pack("<d", 1e308) * dim, may_pass=True)
    specs += hostile_metadata(secs["metadata"])
    return specs


def hostile_metadata(section: tuple[int, int]) -> list[dict[str, Any]]:
    """Metadata that is not JSON, not an object, nested too deeply for the parser, or an
    object with fields of the wrong types (valid JSON: verify may pass those)."""
    meta, mlen = section

    def pad(raw: bytes) -> bytes:
        return raw[:-1] + b" " * (mlen - len(raw)) + raw[-1:] if len(raw) < mlen else raw[:mlen]

    specs = []
    for raw, may_pass in (
        (b"[" * mlen, False), (b"{" * mlen, False), (b'{"a": ' + b"[" * (mlen - 6), False),
        (b'"' + b"x" * (mlen - 2) + b'"', False), (b"\xff" * mlen, False), (b"1" * mlen, False),
        (pad(b"null "), False), (pad(b"{}"), True), (pad(b'{"source": []}'), True),
        (pad(b'{"source": "abc", "records": null}'), True),
        (pad(b'{"source": {"bytes": "x", "compression": 5, "name": []}, "records": "many", '
             b'"created": {}, "duplicates": [1]}'), True),
        (pad(b'{"x": 1' + b"0" * 5000 + b"}"), False),
    ):
        if len(raw) == mlen:
            specs.append({"kind": "bytes", "pos": meta, "hex": raw.hex(), "forge": True,
                          "may_pass": may_pass})
    return specs


def _check(results: dict[int, dict[str, Any]], crashes: list[str],
           specs: list[dict[str, Any]], *, verify_must_fail: bool = True) -> None:
    assert not crashes, "\n\n".join(crashes)
    missing = [i for i in range(len(specs)) if i not in results]
    assert not missing, f"no result for cases {missing[:10]}"
    failures = []
    for i, r in sorted(results.items()):
        spec = specs[i]
        if r["bad"]:
            failures.append(f"case {i} {spec}:\n" + "\n".join(r["bad"]))
            continue
        if spec.get("benign"):
            if not r["same_as_base"]:
                failures.append(f"case {i} {spec}: an ignored field changed what is read")
        elif spec.get("may_pass"):
            if r["verify_ok"] != (r["cli_verify"] == 0):
                failures.append(f"case {i} {spec}: verify() and the CLI disagree")
        elif r["changed"] and verify_must_fail and (r["verify_ok"] or r["cli_verify"] != 1):
            failures.append(f"case {i} {spec}: verify did not detect the damage "
                            f"(ok={r['verify_ok']}, exit {r['cli_verify']})")
    assert not failures, f"{len(failures)} of {len(specs)} cases failed:\n\n" + \
        "\n\n".join(failures[:15])


@pytest.fixture(scope="module")
def base_bytes(base_store: tuple[Path, list[str], Any]) -> bytes:
    data = base_store[0].read_bytes()
    assert len(sections(data)) == 7
    return data


def test_layout_constants_match_the_format_module(base_bytes: bytes) -> None:
    from embstore import format as fmt

    assert fmt._HEADER.size == relutil.FIXED_END
    assert fmt.SECTION_TABLE_OFFSET == relutil.SECTION_TABLE
    assert fmt._SECTION.size == relutil.SECTION_SIZE
    assert 1 << fmt.BLOCK_LOG2 == relutil.BLOCK
    secs = sections(base_bytes)
    assert secs["checksums"][1] == 16, "the base store should span two checksum blocks"


def test_accidental_damage(base_store: tuple[Path, list[str], Any], base_bytes: bytes,
                           tmp_path: Path) -> None:
    specs = accidental_damage(base_bytes, seed=11)
    # The serial twins of the kernels (the same code, compiled without prange): parallel
    # launches cost ~20 ms each on a shared CI machine.  The forged cases below, which are
    # the ones that reach the kernels with hostile indexes, use the parallel kernels.
    env = relutil.child_env(EMBSTORE_SERIAL="1")
    results, crashes = relutil.run_probes(base_store[0], base_store[1], specs, tmp_path, env=env)
    _check(results, crashes, specs)
    print(f"accidental damage: {len(specs)} damaged stores probed")


def test_forged_headers(base_store: tuple[Path, list[str], Any], base_bytes: bytes,
                        tmp_path: Path) -> None:
    specs = forged_headers(base_bytes)
    # A forged header is refused by open or reads the same data (section bounds are checked
    # against the layout), so the cheaper serial kernels do here; see test_accidental_damage.
    env = relutil.child_env(EMBSTORE_SERIAL="1")
    results, crashes = relutil.run_probes(base_store[0], base_store[1], specs, tmp_path, env=env)
    _check(results, crashes, specs)
    opened = sum(1 for i, r in results.items() if r["verify_ok"] and not specs[i].get("benign"))
    assert opened == 0
    print(f"forged headers: {len(specs)} stores probed")


def test_forged_content_behind_valid_checksums(base_store: tuple[Path, list[str], Any],
                                               base_bytes: bytes, tmp_path: Path) -> None:
    specs = forged_content(base_bytes, base_store[1])
    results, crashes = relutil.run_probes(base_store[0], base_store[1], specs, tmp_path)
    _check(results, crashes, specs)
    print(f"forged content: {len(specs)} stores probed")


def test_hostile_metadata_in_a_large_section(base_store: tuple[Path, list[str], Any],
                                            tmp_path: Path) -> None:
    """A metadata section of 200 KB leaves room for JSON nested deeper than the parser's
    recursion limit and numbers with more digits than int() accepts."""
    big = tmp_path / "bigmeta.emb"
    relutil.rewrite_with_metadata(base_store[0], big, {"pad": "x" * 200_000})
    data = big.read_bytes()
    specs = hostile_metadata(sections(data)["metadata"])
    work = tmp_path / "work"
    work.mkdir()
    results, crashes = relutil.run_probes(big, base_store[1], specs, work)
    _check(results, crashes, specs)


def test_verify_cli_exit_codes(base_store: tuple[Path, list[str], Any], base_bytes: bytes,
                               tmp_path: Path) -> None:
    """The installed ``embstore verify`` command: exit 0 for the intact store, 1 for damage."""

    exe = relutil.embstore_command()
    assert exe, "the embstore command is not installed"
    good = relutil.run_child([exe, "verify", "--json", str(base_store[0])], timeout=120)
    assert good.returncode == 0, good.describe()
    assert json.loads(good.stdout)["ok"] is True
    specs = [{"kind": "flip", "pos": 4096 + 17, "bit": 3},
             {"kind": "truncate", "size": len(base_bytes) - 4096}]
    for k, spec in enumerate(specs):
        p = tmp_path / f"d{k}.emb"
        p.write_bytes(relutil.apply_damage(base_bytes, spec))
        res = relutil.run_child([exe, "verify", str(p)], timeout=120)
        assert res.returncode == 1, (spec, res.describe())
        assert "damaged" in res.stderr.lower() or "truncated" in res.stderr.lower(), res.stderr
        assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_no_out_of_bounds_reads_with_bounds_checked_kernels(
        base_store: tuple[Path, list[str], Any], base_bytes: bytes, tmp_path: Path) -> None:
    """The hostile content again, with every kernel compiled with Numba's bounds checking
    (a private cache, so the shared one is untouched): any read outside an array raises
    IndexError in the child instead of silently reading neighbouring memory."""
    specs = (forged_content(base_bytes, base_store[1]) + forged_headers(base_bytes)
             + accidental_damage(base_bytes, seed=12))
    cache = tmp_path / "numba-cache"
    env = relutil.child_env(NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(cache),
                            EMBSTORE_SERIAL="1")
    control = relutil.run_python(
        "import numpy as np\nfrom embstore._kernels import gather as kgather\n"
        "v = np.zeros((4, 3), np.float32); out = np.zeros((1, 3), np.float32)\n"
        "try:\n    kgather.gather_into(v, np.array([10**6]), np.array([0]), out)\n"
        "except IndexError:\n    print('checked')\n", env=env, timeout=1800)
    assert "checked" in control.stdout, "bounds checking is not active: " + control.describe()
    work = tmp_path / "work"
    work.mkdir()
    results, crashes = relutil.run_probes(base_store[0], base_store[1], specs, work, env=env,
                                          timeout=1800, case_timeout=600)
    _check(results, crashes, specs)
