"""Nothing in a store or an input file is executed or unpickled.

* Static: embstore's source imports no deserialiser that can run code (pickle, marshal,
  shelve, dill, yaml, joblib...), never calls eval/exec/compile/__import__, loads NumPy
  files only without pickles, and starts no processes.
* Dynamic: with a Python audit hook installed (after the kernels are loaded), hostile stores
  -- metadata that looks like code, a pickle where the metadata should be -- and hostile
  inputs -- a pickle, an object-dtype .npy, a store passed as input -- are read through every
  path; no audit event for code execution, unpickling, process creation, dynamic libraries
  or network access may appear, and the payloads' side effects never happen.
"""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import relutil

PACKAGE = relutil.REPO / "embstore"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                  "joblib", "yaml", "jsonpickle", "subprocess", "ctypes", "socket", "urllib",
                  "http", "requests"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 5, files
    return files


def test_no_unsafe_imports_or_calls_in_the_package() -> None:
    problems = []
    for path in _sources():
        rel = path.relative_to(PACKAGE).as_posix()  # "_kernels/_core.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES:
                    problems.append(f"{rel}:{getattr(node, 'lineno', 0)}: imports {name}")
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(
                    fn, ast.Attribute) else ""
                builtin = isinstance(fn, ast.Name) or (isinstance(fn, ast.Attribute) and isinstance(
                    fn.value, ast.Name) and fn.value.id == "builtins")  # not re.compile()
                if name in UNSAFE_CALLS and builtin:
                    problems.append(f"{rel}:{node.lineno}: calls {name}()")
                if name in ("system", "popen", "spawnv", "execv", "execve", "startfile"):
                    problems.append(f"{rel}:{node.lineno}: calls {name}()")
                if name == "load" and any(k.arg == "allow_pickle" and not (
                        isinstance(k.value, ast.Constant) and k.value.value is False)
                        for k in node.keywords):
                    problems.append(f"{rel}:{node.lineno}: np.load with pickles")
                if name in ("loads", "load") and isinstance(fn, ast.Attribute) and isinstance(
                        fn.value, ast.Name) and fn.value.id in UNSAFE_MODULES:
                    problems.append(f"{rel}:{node.lineno}: {fn.value.id}.{name}()")
                # data/make_example.py is the maintainer script that built the shipped example:
                # it imports standard-library modules by name to collect their docstrings. It
                # is not installed (embstore/data is not a package) and reads no data.
                if name == "import_module" and rel not in ("__init__.py", "data/make_example.py"):
                    problems.append(f"{rel}:{node.lineno}: dynamic import")
    assert not problems, "\n".join(problems)


def test_the_only_dynamic_import_is_a_fixed_list_of_submodules() -> None:
    """``embstore.__getattr__`` imports submodules lazily; the name must come from a
    literal allow-list, never from data."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", getattr(n.func, "id", "")) == "import_module"]
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and any(c in ast.walk(fn) for c in calls):
            guards = [n for n in ast.walk(fn) if isinstance(n, ast.Compare)
                      and isinstance(n.ops[0], ast.In) and isinstance(n.comparators[0], ast.Tuple)
                      and all(isinstance(e, ast.Constant) for e in n.comparators[0].elts)]
            assert guards, "import_module without a literal allow-list"


AUDITED = r"""
import json, os, sys
import numpy as np
import embstore
from embstore.cli import main as cli

job = json.loads(sys.argv[1])
# Warm up: load the kernels (Numba reads its on-disk cache, which it owns) on a clean store.
s = embstore.open(job["clean"])
s.lookup(["a"]); s.build_matrix({"a": 1}, oov="random"); embstore.verify(job["clean"])
embstore.convert(job["clean_src"], job["out"] + ".warm", quiet=True)

BAD = ("exec", "compile", "pickle", "marshal", "subprocess", "os.system", "os.exec", "os.spawn",
       "os.posix_spawn", "os.fork", "ctypes", "socket", "urllib", "http", "shutil.unpack")
events = []
numba_cache = []
def from_numba_cache(event):
    # Numba's own on-disk cache of compiled kernels (written by Numba in embstore's
    # __pycache__) is unpickled by Numba when a kernel signature is first used, and
    # llvmlite binds the loaded machine code through ctypes: neither touches store data.
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename.replace(os.sep, "/")
        if "/numba/core/" in name and name.endswith(("/caching.py", "/serialize.py")):
            return True
        if event.startswith("ctypes") and ("/numba/" in name or "/llvmlite/" in name):
            return True
        f = f.f_back
    return False
def hook(event, args):
    if event.startswith(BAD) or (event == "import" and args and str(args[0]).split(".")[0] in
                                 ("pickle", "_pickle", "shelve", "dill", "yaml", "cloudpickle")):
        if event.startswith(("pickle", "marshal", "compile", "exec", "ctypes")) and \
                from_numba_cache(event):
            numba_cache.append(event)
        else:
            events.append((event, repr(args)[:200]))
sys.addaudithook(hook)

outcomes = {}
for path in job["stores"]:
    try:
        st = embstore.open(path)
        meta = st.metadata
        list(st.words); st.lookup(["a", "b"]); st.build_matrix({"a": 1, "zz": 2}, oov="mean")
        outcomes[path] = "opened: " + json.dumps(meta)[:80]
    except embstore.FormatError as exc:
        outcomes[path] = "FormatError"
    embstore.verify(path)
    with open(os.devnull, "w") as null:
        sys.stdout, old = null, sys.stdout
        try:
            cli(["info", path]); cli(["get", path, "a"])
        finally:
            sys.stdout = old
for path in job["inputs"]:
    try:
        embstore.convert(path, job["out"], quiet=True, force=True)
        outcomes[path] = "converted"
    except embstore.ConversionError as exc:
        outcomes[path] = "ConversionError: " + str(exc)[:120]
print(json.dumps({"events": events, "outcomes": outcomes, "numba_cache": len(numba_cache)}))
"""


class _Payload:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_hostile_stores_and_inputs_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    clean_src = tmp_path / "clean.txt"
    relutil.write_text(clean_src, ["a", "b", "c"], relutil.make_vectors(3, 4))
    import embstore

    clean = tmp_path / "clean.emb"
    embstore.convert(clean_src, clean, quiet=True)
    code_like = {"source": {"name": f"__import__('os').system('touch {marker}')"},
                 "__reduce__": f"open('{marker}', 'w')", "records": "${{7*7}}",
                 "pad": "x" * 4000}
    stores = []
    code_store = tmp_path / "code.emb"
    relutil.rewrite_with_metadata(clean, code_store, code_like)
    stores.append(code_store)
    pickled = pickle.dumps(_Payload(str(marker)), protocol=4)
    data = bytearray(code_store.read_bytes())
    off, length = relutil.sections(bytes(data))["metadata"]
    data[off:off + length] = (pickled + b" " * length)[:length]
    relutil.fix_checksums(data)
    pickle_store = tmp_path / "pickle-meta.emb"
    pickle_store.write_bytes(bytes(data))
    stores.append(pickle_store)
    inputs = []
    for name, raw in (("model.pkl", pickled), ("vectors.txt", pickled),
                      ("vectors.bin", b"2 2\n" + pickled)):
        (tmp_path / name).write_bytes(raw)
        inputs.append(tmp_path / name)
    npy = tmp_path / "vectors.npy"
    np.save(npy, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    inputs += [npy, clean]
    job = {"clean": str(clean), "clean_src": str(clean_src), "out": str(tmp_path / "out.emb"),
           "stores": [str(p) for p in stores], "inputs": [str(p) for p in inputs]}
    res = relutil.run_python(AUDITED, json.dumps(job), cwd=tmp_path)
    assert res.returncode == 0, res.describe()
    out = relutil.last_json(res.stdout)
    assert out["events"] == [], out["events"]
    assert not marker.exists()
    outcomes = out["outcomes"]
    assert outcomes[str(code_store)].startswith("opened")  # inert strings, read as strings
    assert outcomes[str(pickle_store)] == "FormatError"
    for p in inputs:
        if p.name != "vectors.bin":
            assert outcomes[str(p)].startswith("ConversionError"), (p, outcomes[str(p)])


def test_hostile_vocabulary_files_are_refused(tmp_path: Path) -> None:
    """A vocabulary is user input too: JSON nested past the parser's limit used to escape
    as RecursionError (a traceback from ``embstore matrix``)."""
    import pytest

    import embstore
    from embstore import VocabularyError

    src = tmp_path / "v.txt"
    relutil.write_text(src, ["a", "b"], relutil.make_vectors(2, 3))
    embstore.convert(src, tmp_path / "v.emb", quiet=True)
    store = embstore.open(tmp_path / "v.emb")
    for name, text in (("deep.json", "[" * 100_000), ("deepobj.json", '{"a":' * 100_000),
                       ("bigint.json", '{"a": 1' + "0" * 5000 + "}")):
        (tmp_path / name).write_text(text)
        with pytest.raises(VocabularyError):
            store.build_matrix(str(tmp_path / name))
