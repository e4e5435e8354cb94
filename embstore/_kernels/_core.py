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
import threading
import types
from collections.abc import Callable
from typing import Any

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


class _LaunchState:
    lock = threading.Lock()
    parallel_used = False
    serial_only = os.environ.get("EMBSTORE_SERIAL", "") not in ("", "0")


def _after_fork_in_child() -> None:
    _LaunchState.lock = threading.Lock()
    if _LaunchState.parallel_used:
        try:
            import numba

            layer = numba.threading_layer()
        except Exception:  # pragma: no cover - numba always answers after a launch
            layer = "omp"
        if layer == "omp":
            _LaunchState.serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ParallelKernel:
    """A ``prange`` kernel with a serial twin; see the module docstring for why."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.parallel = njit(parallel=True, **_JIT)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = njit(**_JIT)(twin)

    def __call__(self, *args: Any) -> Any:
        if _LaunchState.serial_only:
            return self.serial(*args)
        with _LaunchState.lock:
            _LaunchState.parallel_used = True
            return self.parallel(*args)


def parallel_kernel(fn: Callable[..., Any]) -> ParallelKernel:
    return ParallelKernel(fn)


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
