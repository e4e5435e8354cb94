"""Launch plumbing and LLVM intrinsics shared by every kernel module.

Kernels trust their inputs' shapes and dtypes: the Python functions that call them validate
arguments and turn status codes into exceptions.  What kernels do *not* trust is content read
from a store file: every row id, word offset and probe sequence taken from disk is
bound-checked against section sizes validated at open time, and a violation is reported as a
status code, never followed.

Every kernel releases the GIL and is cached on disk (``cache=True``), so a second process
loads machine code instead of compiling.  Numba's cache tracks only the source file that
defines a kernel: after editing an ``inline="always"`` helper in another module of this
package, delete ``embstore/_kernels/__pycache__`` (``make clean``) so its callers recompile.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic

JIT = {"cache": True, "nogil": True}
_JIT = JIT

# ---------------------------------------------------------------------------------------------
# Parallel launch policy
#
# Every ``prange`` kernel is compiled twice: ``parallel=True`` and a serial twin from the same
# source.  ``ParallelKernel.__call__`` picks one per call:
#
# * the serial twin when the call's work (``work(*args)``, in the kernel's own unit) is below
#   the kernel's ``threshold``: a parallel region costs ~10 us idle and, when the other cores
#   are busy, up to a scheduler time slice (milliseconds) waiting for a pool thread; the
#   thresholds are measured with ``benchmarks/launch_thresholds.py`` (docs/THREADS.md);
# * the serial twin when this process may not launch (``_LaunchState.serial_only``):
#   ``EMBSTORE_SERIAL=1``, or a child forked in a state Numba's threading layer cannot follow
#   (see ``_before_fork``);
# * otherwise the parallel kernel.  Under the ``tbb`` and ``omp`` layers, which are
#   thread-safe, concurrent calls from several threads launch concurrently, with no lock.
#   Only ``workqueue`` (Numba aborts the process on a concurrent launch) needs one, and a
#   thread that finds it taken runs the serial twin instead of waiting.
#
# Numba's layer is chosen once per process, at the first parallel launch, from
# ``NUMBA_THREADING_LAYER`` (default: the first that loads of ``tbb``, ``omp``, ``workqueue``).
# ``tbb`` is preferred because it is thread- and fork-safe, and because its work-stealing
# master thread finishes a region itself when the pool threads are not scheduled.  The ``tbb``
# wheel installs ``libtbb`` in ``<prefix>/lib``, which the dynamic loader does not search, so
# a pip-installed TBB is invisible to Numba (numba#6108, #7148); ``_make_tbb_loadable`` loads it
# by path first, which is all that is changed: the user's layer settings are left alone.

_TBB_LIBRARY = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}


class _LaunchState:
    """Process-wide launch state, shared by every ``ParallelKernel``."""

    serial_only = os.environ.get("EMBSTORE_SERIAL", "") not in ("", "0")
    serial_reason = "EMBSTORE_SERIAL is set" if serial_only else ""
    layer: str | None = None  # Numba's threading layer, once started (by us or anyone)
    lock: threading.Lock | None = None  # held around launches under workqueue only
    launch_thread: int | None = None  # thread that started the layer (TBB's "main" thread)
    parallel_used = False  # a parallel launch happened in this process
    inflight: ClassVar[set[int]] = set()  # threads inside a parallel launch right now
    child_reason = ""  # set before fork: why a child must run serial ("" if it need not)
    start_lock = threading.Lock()


def _tbb_library() -> str | None:
    """Path of the ``libtbb`` of the ``tbb`` wheel, if that is installed."""
    from importlib import metadata

    want = _TBB_LIBRARY.get(sys.platform)
    try:
        files = metadata.distribution("tbb").files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == want:
            path = f.locate()
            if os.path.exists(path):
                return os.path.realpath(path)
    return None


def _tbb_loaded() -> bool:
    """Whether some ``libtbb`` is mapped in this process already (Linux; else assume not)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            return "/libtbb.so" in f.read()
    except OSError:
        return False


def _make_tbb_loadable(force: bool = False) -> None:
    """Load the wheel's ``libtbb`` by path, so that Numba can select the ``tbb`` layer (only
    if the configured layer may be ``tbb``, unless ``force``)."""
    from numba.core import config

    layer = str(config.THREADING_LAYER).lower()
    wanted = force or layer in ("tbb", "safe", "threadsafe") or (
        layer == "default" and list(config.THREADING_LAYER_PRIORITY)[:1] == ["tbb"])
    if not wanted or _tbb_loaded():
        return
    path = _tbb_library()
    if path is None:
        return
    try:
        import llvmlite.binding as llb

        llb.load_library_permanently(path)
    except Exception:  # pragma: no cover - a broken wheel: Numba falls back to omp/workqueue
        return


def tbb_available() -> bool:
    """Whether Numba's ``tbb`` layer can load in this process (the wheel's ``libtbb`` made
    loadable first); does not start any layer."""
    _make_tbb_loadable(force=True)
    try:
        from numba.np.ufunc import parallel

        parallel._check_tbb_version_compatible()
        from numba.np.ufunc import tbbpool  # noqa: F401
    except Exception:
        return False
    return True


def _current_layer() -> str | None:
    import numba

    try:
        return str(numba.threading_layer())  # type: ignore[attr-defined]
    except ValueError:  # not started yet
        return None


def _start() -> str | None:
    """Start Numba's threading layer (once per process) and set the policy for it.

    Returns the layer, or None when none could be started (then this process runs serial).
    """
    st = _LaunchState
    with st.start_lock:
        if st.layer is not None or st.serial_only:
            return st.layer
        import numba

        layer = _current_layer()
        if layer is None:
            _make_tbb_loadable()
            try:
                numba.get_num_threads()  # starts the threading layer in this thread
            except (ValueError, ImportError, OSError) as exc:
                import warnings

                st.serial_only = True
                st.serial_reason = f"no Numba threading layer could be started: {exc}"
                warnings.warn(f"embstore runs its kernels serially: {st.serial_reason}",
                              RuntimeWarning, stacklevel=3)
                return None
            st.launch_thread = threading.get_ident()
            layer = _current_layer()
        else:  # started before embstore's first launch: assume the main thread did it
            st.launch_thread = threading.main_thread().ident
        st.lock = threading.Lock() if layer == "workqueue" else None
        st.layer = layer
        return layer


def threading_layer() -> str:
    """How this process runs embstore's parallel kernels: ``"tbb"``, ``"omp"`` or
    ``"workqueue"`` (Numba's threading layer, started by this call if need be), or
    ``"serial"`` if it runs only the serial twins (``launch_policy()["reason"]`` says why)."""
    if not _LaunchState.serial_only:
        _start()
    return "serial" if _LaunchState.serial_only else str(_LaunchState.layer)


def launch_policy() -> dict[str, Any]:
    """The policy in force, for diagnostics: layer, threads, lock, and why serial if so."""
    layer = threading_layer()
    threads = 1
    if layer != "serial":
        import numba

        threads = int(numba.get_num_threads())
    return {"layer": layer, "numba_layer": _current_layer(), "threads": threads,
            "locked": _LaunchState.lock is not None, "reason": _LaunchState.serial_reason}


def _before_fork() -> None:
    """Decide, in the forking thread, whether the child may launch parallel regions."""
    st = _LaunchState
    st.child_reason = ""
    if st.serial_only:
        return
    layer = st.layer or _current_layer()
    me = threading.get_ident()
    reason = ""
    if layer == "omp":
        # GNU libgomp's pool does not survive fork: Numba terminates a child that launches
        # (and a grandchild would hang); other OpenMP runtimes are not told apart here.
        reason = "forked from a process whose OpenMP threading layer had started"
    elif layer == "tbb":
        launcher = st.launch_thread if st.launch_thread is not None else (
            threading.main_thread().ident)
        if me != launcher:
            # Numba shuts TBB down for fork only in the thread that started it; from any
            # other thread the child's TBB state is undefined (Numba's threading docs).
            reason = "forked from a thread other than the one that started TBB"
        elif st.inflight - {me}:
            reason = "forked while another thread was inside a parallel region"
    st.child_reason = reason


def _after_fork_in_child() -> None:
    st = _LaunchState
    st.start_lock = threading.Lock()
    st.inflight = set()
    st.parallel_used = False  # none in this process yet
    if st.lock is not None:
        st.lock = threading.Lock()
    if st.child_reason:
        st.serial_only = True
        st.serial_reason = st.child_reason
    if st.layer == "tbb":
        st.launch_thread = threading.get_ident()  # Numba re-attached TBB in this thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


_KERNELS: list[ParallelKernel] = []


def registered() -> list[ParallelKernel]:
    """Every ``ParallelKernel`` defined so far (``registry.kernels()`` imports them all)."""
    return list(_KERNELS)


class ParallelKernel:
    """A ``prange`` kernel with a serial twin; see "Parallel launch policy" above.

    ``work(*args)`` (if given) measures a call's work; below ``threshold`` the serial twin
    runs.  ``.serial`` and ``.parallel`` are the two Numba dispatchers, for callers (and
    tests) that must choose themselves.
    """

    def __init__(self, fn: Callable[..., Any], work: Callable[..., int] | None = None,
                 threshold: int = 0) -> None:
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__wrapped__ = fn
        self.work = work
        self.threshold = threshold
        self._parallel = njit(parallel=True, **_JIT)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = njit(**_JIT)(twin)
        _KERNELS.append(self)

    @property
    def parallel(self) -> Any:
        """The ``parallel=True`` dispatcher (Numba's threading layer started first)."""
        if _LaunchState.layer is None:
            _start()
        return self._parallel

    def __repr__(self) -> str:
        return f"<ParallelKernel {self.__name__} threshold={self.threshold}>"

    def __call__(self, *args: Any) -> Any:
        st = _LaunchState
        if st.serial_only or (self.work is not None and self.work(*args) < self.threshold):
            return self.serial(*args)
        if st.layer is None and _start() is None:
            return self.serial(*args)
        st.parallel_used = True
        lock = st.lock
        if lock is not None:  # workqueue: one launch at a time
            if not lock.acquire(blocking=False):
                return self.serial(*args)  # busy: do the work here rather than wait
            try:
                return self._parallel(*args)
            finally:
                lock.release()
        me = threading.get_ident()
        st.inflight.add(me)
        try:
            return self._parallel(*args)
        finally:
            st.inflight.discard(me)


def parallel_kernel(fn: Callable[..., Any] | None = None, *, work: Callable[..., int] | None = None,
                    threshold: int = 0) -> Any:
    """Decorator: ``@parallel_kernel`` or ``@parallel_kernel(work=..., threshold=...)``.

    ``work`` takes the kernel's arguments and returns the call's size in the kernel's unit
    (queries, rows, bytes, values); calls with ``work < threshold`` run the serial twin.  It
    runs in Python, before the kernel: nothing callable is passed into compiled code.
    """
    if fn is not None:
        return ParallelKernel(fn, work, threshold)

    def wrap(f: Callable[..., Any]) -> ParallelKernel:
        return ParallelKernel(f, work, threshold)

    return wrap


# ---------------------------------------------------------------------------------------------
# memcpy between byte offsets of two arrays (LLVM's memcpy: vectorised, any alignment)


def data_ptr(context, builder, arrty, arr, index, *, bytewise):  # type: ignore[no-untyped-def]
    """LLVM ``i8*`` to byte ``index`` (``bytewise``) or element ``index`` of an array."""
    data = context.make_array(arrty)(context, builder, arr).data
    if bytewise:
        return builder.gep(builder.bitcast(data, cgutils.voidptr_t), [index])
    return builder.bitcast(builder.gep(data, [index]), cgutils.voidptr_t)


@intrinsic
def memcpy(typingctx, dst, dst_off, src, src_off, nbytes):  # type: ignore[no-untyped-def]
    if not (isinstance(dst, nbtypes.Array) and isinstance(src, nbtypes.Array)):
        return None
    sig = nbtypes.void(dst, nbtypes.intp, src, nbtypes.intp, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        d, doff, s, soff, n = args
        dptr = data_ptr(context, builder, signature.args[0], d, doff, bytewise=True)
        sptr = data_ptr(context, builder, signature.args[2], s, soff, bytewise=True)
        cgutils.raw_memcpy(builder, dptr, sptr, n, 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def load_u64(typingctx, arr, off):  # type: ignore[no-untyped-def]
    """Unaligned little-endian load of 8 bytes at byte offset ``off`` of ``arr``."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.uint64(arr, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = data_ptr(context, builder, signature.args[0], *args, bytewise=True)
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


@intrinsic
def ctz64(typingctx, x):  # type: ignore[no-untyped-def]
    """Count trailing zero bits (x != 0)."""
    sig = nbtypes.uint64(nbtypes.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@intrinsic
def prefetch(typingctx, arr, index):  # type: ignore[no-untyped-def]
    """Hint the CPU to fetch ``arr``'s element ``index`` (flat) into cache; no effect on data."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.void(arr, nbtypes.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = data_ptr(context, builder, signature.args[0], *args, bytewise=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def address(typingctx, arr):  # type: ignore[no-untyped-def]
    """The address of ``arr``'s first byte, as an integer (for page arithmetic)."""
    if not isinstance(arr, nbtypes.Array):
        return None
    sig = nbtypes.int64(arr)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return sig, codegen


@intrinsic
def madvise(typingctx, addr, length, advice):  # type: ignore[no-untyped-def]
    """libc ``madvise(addr, length, advice)``; returns its result (0 or -1)."""
    sig = nbtypes.int32(nbtypes.int64, nbtypes.int64, nbtypes.int32)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a, n, adv = args
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [cgutils.voidptr_t, ir.IntType(64), i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "madvise")
        return builder.call(fn, [builder.inttoptr(a, cgutils.voidptr_t), n, adv])

    return sig, codegen



# SWAR constants shared by the digit and newline scanners.
LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
HIGH8 = np.uint64(0x8080808080808080)
U1 = np.uint64(1)
U32 = np.uint64(32)
U33 = np.uint64(33)
