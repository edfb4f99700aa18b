"""A clone of telegen, not built, that shadows an installed telegen.

`python -m pytest` (or `python -m telegen`, or a Ray worker of a fleet)
started inside a clone puts the clone first on sys.path, so `import telegen`
finds the clone's source tree. Unless it was built in place (`make venv`, an
editable install), that tree has no compiled _fastpath and _gzip, and the
import fails. With telegen installed (`pip install .`), the installed package
is what the user asked for: telegen/__init__.py then takes its submodules, the
compiled ones included, from there (`package_path` becomes its __path__).
"""
from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES

COMPILED = ("_fastpath", "_gzip", "_zstd")


def is_built(package_dir: str) -> bool:
    """Whether `package_dir` (a telegen/ directory) holds its compiled modules."""
    return all(any(os.path.isfile(os.path.join(package_dir, name + suffix)) for suffix in EXTENSION_SUFFIXES)
               for name in COMPILED)


def installed_instead(init_file: str) -> str | None:
    """The telegen/ directory to take the submodules from when `init_file`'s
    package is an unbuilt source tree and a built telegen is elsewhere on
    sys.path (the installed one); None when this package is built (an
    install, or a tree built in place) or there is no other."""
    here = os.path.dirname(os.path.realpath(init_file))
    if is_built(here):
        return None
    for entry in sys.path:
        candidate = os.path.realpath(os.path.join(entry or os.curdir, "telegen"))
        if candidate != here and os.path.isfile(os.path.join(candidate, "__init__.py")) and is_built(candidate):
            return candidate
    return None


def _package_path() -> list[str]:
    package = sys.modules[__package__]  # telegen, while its __init__ runs
    installed = installed_instead(package.__file__)
    return [installed] if installed is not None else list(package.__path__)


package_path = _package_path()
