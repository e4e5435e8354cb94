"""Coverage-guided fuzzing of the converter with atheris (libFuzzer for Python), optional.

The oracle is the one of ``fuzz_converter.py``: each input must convert to exactly what the
reference parser expects or raise a located ConversionError, leaving nothing behind.  Python
code of the converter and its input layer is instrumented, so libFuzzer steers inputs into
new branches of the format detection, header handling and error reporting (the compiled
kernels are not instrumented; the mutation campaign and the hypothesis tests cover them).

    pip install atheris
    python tests/reliability/atheris_converter.py --seed-corpus CORPUS_DIR   # writes seeds
    python tests/reliability/atheris_converter.py CORPUS_DIR -max_total_time=600

A failing input is saved by libFuzzer as ``crash-<sha1>``; replay it with
``python tests/reliability/fuzz_converter.py --replay crash-<sha1>``.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The kernels must stay as written: Numba compiles their bytecode, and instrumented bytecode
# calls into atheris.  Import them (and numpy, numba) first; instrument only the Python-level
# conversion modules imported inside the block.

with atheris.instrument_imports(include=["embstore"]):
    pass

import fuzz_converter as fz

WORK = Path(tempfile.mkdtemp(prefix="embstore-atheris-"))


def test_one_input(data: bytes) -> None:
    outcome = fz.check_case(data, WORK)
    if outcome.status == "FAILED":
        raise AssertionError(outcome.detail)


def write_seeds(directory: Path, n: int = 200) -> None:
    """Valid and mutated files from the mutation harness's generator, as a starting corpus."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for i in range(n):
        data, _label = fz.make_case(rng) if i % 2 else fz.generate(rng)
        (directory / f"seed-{i}").write_bytes(data)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-corpus":
        write_seeds(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
