"""Build script: compiles the send path's Cython modules.

telegen/_fastpath.pyx: scan (wire walk -> patch plan) and patch; its parts,
one per concern, are the telegen/_*.pxi files it includes (Cython finds them
beside it and rebuilds when one changes).
telegen/_gzip.pyx: the patchable gzip stream (compress once, patch per send).
telegen/_zstd.pyx: the patchable zstd frame (likewise, with raw literals).
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
MODULES = ("_fastpath", "_gzip", "_zstd")


def extensions() -> list:
    sources = [HERE / "telegen" / f"{name}.pyx" for name in MODULES]
    if not all(source.exists() for source in sources):
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    exts = [Extension(
        f"telegen.{source.stem}",
        [str(source.relative_to(HERE))],
        # No fused multiply-add: the reference implementation must reproduce
        # every floating-point result bit for bit.
        extra_compile_args=["-O3", "-ffp-contract=off"],
    ) for source in sources]
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


setup(ext_modules=extensions())
