"""Build script: compiles telegen/_fastpath.pyx when it is present.

The compiled patch path arrives with the sender; until then the package is
pure Python and this script builds no extension (no placeholder module).
"""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
FASTPATH = HERE / "telegen" / "_fastpath.pyx"


def extensions() -> list:
    if not FASTPATH.exists():
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    ext = Extension(
        "telegen._fastpath",
        [str(FASTPATH.relative_to(HERE))],
        # No fused multiply-add: the reference implementation must reproduce
        # every floating-point result bit for bit.
        extra_compile_args=["-O3", "-ffp-contract=off"],
    )
    return cythonize([ext], language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


setup(ext_modules=extensions())
