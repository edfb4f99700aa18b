"""The package's shape (docs/design.md): stages share nothing but the file format.

Generation and sending never import each other; the sink and the config
toolkit belong to no stage. Checked on the source's static imports, followed
transitively, so a new import anywhere on the path is caught.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "telegen"


def _source(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return None  # compiled (telegen._fastpath) or not telegen's


def _is_module(name: str) -> bool:
    return _source(name) is not None or ROOT.joinpath(*name.split(".")).with_suffix(".pyx").exists()


@cache
def _direct_imports(module: str) -> frozenset[str]:
    path = _source(module)
    if path is None:
        return frozenset()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.add(name)
            # `from . import x` and `from .send import config` may name modules.
            found.update(f"{name}.{alias.name}" for alias in node.names if _is_module(f"{name}.{alias.name}"))
    modules: set[str] = set()
    for name in found:
        if not name.startswith("telegen"):
            continue
        parts = name.split(".")
        # Importing a.b.c runs a.b's __init__ too; the top-level telegen/__init__
        # is the public API that gathers every stage, so it does not count.
        modules.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return frozenset(modules)


def reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_direct_imports(current))
    return seen


def modules_under(package: str) -> list[str]:
    base = PACKAGE.parent
    return sorted(".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
                  for p in (base / package.replace(".", "/")).rglob("*.py"))


# (package, packages none of its modules may reach)
BOUNDARIES = [
    ("telegen.send", ("telegen.generate", "telegen.sink", "telegen.fleet", "telegen.importing", "telegen.verify")),
    ("telegen.generate", ("telegen.send", "telegen.sink", "telegen.fleet", "telegen.importing")),
    ("telegen.sink", ("telegen.generate", "telegen.send", "telegen.fleet")),
    ("telegen.fleet", ("telegen.generate", "telegen.sink")),
    ("telegen.importing", ("telegen.generate", "telegen.send", "telegen.sink", "telegen.fleet")),
    ("telegen.configkit", ("telegen.generate", "telegen.send", "telegen.sink", "telegen.fleet", "telegen.templates")),
    ("telegen.templates", ("telegen.generate", "telegen.send", "telegen.sink", "telegen.fleet")),
    # Verification reads a run's report (a dict) and the backends; the engine calls its sampler through a hook.
    ("telegen.verify", ("telegen.generate", "telegen.send", "telegen.sink", "telegen.fleet", "telegen.importing")),
    # The kernel's twins know the file format and nothing of the stages that use the kernel.
    ("telegen.reference", ("telegen.generate", "telegen.send", "telegen.sink", "telegen.fleet", "telegen.importing")),
]


@pytest.mark.parametrize(("package", "forbidden"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_stages_do_not_import_each_other(package: str, forbidden: tuple[str, ...]) -> None:
    modules = modules_under(package) if _source(package).name == "__init__.py" else [package]
    assert modules, package
    crossings = {module: sorted(m for m in reachable(module) if m.startswith(forbidden))
                 for module in modules}
    assert {module: found for module, found in crossings.items() if found} == {}


def test_the_walk_sees_real_imports() -> None:
    # The checker itself must not pass by seeing nothing.
    assert {"telegen.configkit", "telegen.templates", "telegen.errors"} <= reachable("telegen.send.config")
    assert "telegen.generate.config" in reachable("telegen.generate.traces")
    assert "telegen.send.sender" in reachable("telegen.cli")
    assert "telegen.send.sender" in reachable("telegen.fleet.runner")
    assert {"telegen.sink.receiver", "telegen.sink.validate", "telegen._fastpath"} <= reachable("telegen.sink")

