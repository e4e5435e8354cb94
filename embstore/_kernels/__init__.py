"""The compiled (Numba) kernels, one module per concern; they import only NumPy, Numba,
llvmlite, :mod:`embstore.format` constants and each other.

``_core`` holds the launch policy and intrinsics; ``strings`` hashing and UTF-8; ``number``,
``text`` and ``binary`` the parsers; ``index`` the vocabulary index; ``gather`` row copies;
``stats``, ``checksum`` and ``verify`` the rest.  Importing this package compiles nothing.
"""
