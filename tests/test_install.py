"""What a new user does, in a clean virtual environment: `pip install
'.[fleet]'` from a copy of this checkout (only tracked and new files: nothing
built in place, so the copy is a clone's source tree), then a real two-sender
`telegen fleet` against a local sink, started outside the clone and inside it;
then the pytest extra (`pip install 'telegen-otlp[pytest]'`, which the installed
distribution satisfies: only pytest is fetched) and the example harness
(examples/test_my_backend.py), outside the clone and inside it.

It needs the package index (pip's cache is reused: a second run downloads
nothing) and takes about two minutes on two cores, most of it pip building
telegen and unpacking Ray. Skipped only when the index cannot be reached.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from telegen.fleet.runner import _descendants
from telegen.sink import Sink

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 420
RUN_TIMEOUT = 150
SIGNALS = ("traces", "metrics", "logs")

GENERATOR_YAML = """\
seed: 3
traces: {count: 20, spans: {avg_per_trace: 6, std_dev: 2, high_span_traces: {enabled: false}}}
metrics: {metric_count: 5, timeseries_per_metric: {min: 2, max: 4, default: 3}}
logs: {count: 50}
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (the fleet's clean-up reads /proc)")


def test_an_unbuilt_clone_first_on_sys_path_takes_the_built_telegens_modules(tmp_path):
    """telegen/_checkout.py, without installing anything: a copy of the source
    tree with no compiled modules, first on sys.path (`python -c` in it), and
    this checkout's built package after it."""
    if not list((ROOT / "telegen").glob("_fastpath*.so")):
        pytest.skip("this checkout is not built in place (make venv builds it)")
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "telegen", clone / "telegen",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    probe = ("import telegen, telegen.errors, telegen._fastpath; "
             "print(telegen.errors.__file__); print(telegen._fastpath.__file__)")
    env = {**_env(Path(sys.prefix)), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    errors, compiled = result.stdout.splitlines()
    # Every submodule from there, pure Python ones too: not the clone's mixed with the built ones.
    assert errors == str(ROOT / "telegen" / "errors.py") and compiled.startswith(str(ROOT / "telegen")), result.stdout


@dataclass
class Install:
    base: Path
    clone: Path  # the checkout's source tree, never built
    outside: Path  # a directory with no telegen in it
    venv: Path
    templates: Path
    no_pytest_import: subprocess.CompletedProcess

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _env(venv: Path) -> dict[str, str]:
    """The user's shell with the venv activated, nothing of this test run's Python."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
                        "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run to completion within `timeout`; past it, the command and everything
    it started (a local Ray instance) are killed, and the test fails."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [*_descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(command)} (in {cwd}) ran past {timeout:g} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def copy_checkout(destination: Path) -> None:
    """The checkout's files as a fresh clone has them: tracked and new files,
    not what .gitignore leaves out (.venv, build/, the compiled modules)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, timeout=60)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            source = ROOT / name
            if source.is_file():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination / name)
        return
    shutil.copytree(ROOT, destination, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "*.so", "_fastpath.c", "_gzip.c", "_zstd.c", "__pycache__",
        ".pytest_cache", ".peers", ".benchmarks", ".hypothesis", "generated"))


def index_reachable(venv: Path, env: dict[str, str]) -> bool:
    probe = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "index", "versions", "pip", "--timeout", "10",
                            "--retries", "0"], capture_output=True, text=True, env=env, timeout=60)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    base = tmp_path_factory.mktemp("install")
    clone, outside, venv = base / "telegen-clone", base / "elsewhere", base / "venv"
    clone.mkdir()
    outside.mkdir()
    copy_checkout(clone)
    assert not list((clone / "telegen").glob("_fastpath*.so")), "the copy is a source tree, not built"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = _env(venv)
    # pip's own cache (not --no-cache-dir): a second run downloads nothing.
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{clone}[fleet]"],
                    cwd=base, env=env, timeout=INSTALL_TIMEOUT)
    if installed.returncode != 0:
        if not index_reachable(venv, env):
            pytest.skip("the package index cannot be reached: the clean-venv install check needs it")
        pytest.fail(f"pip install '.[fleet]' failed:\n{installed.stdout[-3000:]}\n{installed.stderr[-5000:]}")
    # Before the pytest extra: telegen imports without pytest.
    no_pytest = run([str(venv / "bin" / "python"), "-c",
                     "import importlib.util, sys, telegen; "
                     "print(importlib.util.find_spec('pytest') is None, 'pytest' in sys.modules, telegen.__version__)"],
                    cwd=outside, env=env, timeout=60)
    (outside / "generator.yaml").write_text(GENERATOR_YAML)
    templates = outside / "templates"
    generated = run([str(venv / "bin" / "telegen"), "generate", "--config", "generator.yaml", "--output-dir",
                     str(templates)], cwd=outside, env=env, timeout=120)
    assert generated.returncode == 0, generated.stderr[-3000:]
    return Install(base, clone, outside, venv, templates, no_pytest)


def test_telegen_imports_without_pytest(install):
    assert install.no_pytest_import.returncode == 0, install.no_pytest_import.stderr[-3000:]
    assert install.no_pytest_import.stdout.split()[:2] == ["True", "False"], "pytest not installed, not imported"


@pytest.mark.parametrize("where,how", [("outside", "telegen"), ("clone", "telegen"), ("clone", "python -m telegen")])
def test_a_two_sender_fleet_runs_from_the_fleet_extra_alone(install, where, how):
    """`telegen fleet` from the fleet extra only: Ray starts (A.2: its import of
    opentelemetry.metrics), and its workers import the installed, compiled
    telegen even started inside the clone (A.3: Ray puts the working directory
    first on the workers' sys.path)."""
    cwd = install.clone if where == "clone" else install.outside
    env = _env(install.venv)
    tag = f"{where}-{how.replace(' ', '-')}"
    config, stats = install.base / f"send-{tag}.yaml", install.base / f"fleet-{tag}.json"
    command = [install.bin("telegen")] if how == "telegen" else [install.bin("python"), "-m", "telegen"]
    with Sink(listen="127.0.0.1:0") as sink:
        config.write_text(json.dumps({
            "input": {"directory": str(install.templates)},
            "otlp": {"endpoint": sink.endpoint, "insecure": True},
            "sending": {"duration": "2s", "rate_limit": {"events_per_second": 20_000}, "stats_interval": 1}}))
        result = run([*command, "fleet", "--config", str(config), "--senders", "2", "--stats-json", str(stats)],
                     cwd=cwd, env=env, timeout=RUN_TIMEOUT)
        time.sleep(0.2)
        received = sum(s.events for s in sink.stats().signals().values())
    assert result.returncode == 0, f"in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-5000:]
    assert "Fleet of 2 senders" in result.stdout
    report = json.loads(stats.read_text())
    assert [s["status"] for s in report["senders"]] == ["done", "done"]
    assert report["delivered_events"] == received > 0, "every event the fleet counts, the sink received"
    assert set(report["signals"]) == set(SIGNALS)


@pytest.fixture(scope="module")
def with_pytest_extra(install) -> Install:
    env = _env(install.venv)
    added = run([install.bin("python"), "-m", "pip", "install", "--quiet", "telegen-otlp[pytest]"], cwd=install.outside,
                env=env, timeout=INSTALL_TIMEOUT)
    assert added.returncode == 0, f"pip install 'telegen-otlp[pytest]' failed:\n{added.stderr[-5000:]}"
    return install


@pytest.mark.parametrize("where,how", [("outside", "python -m pytest"), ("clone", "python -m pytest"),
                                       ("clone", "pytest")])
def test_the_example_harness_passes_with_the_pytest_extra(with_pytest_extra, where, how):
    """The fixtures through the installed `pytest11` entry point; `python -m
    pytest` inside the clone puts the clone's unbuilt source tree first on
    sys.path (exit 3 before: the plugin failed to import)."""
    install = with_pytest_extra
    if where == "clone":
        cwd, target = install.clone, "examples/test_my_backend.py"
    else:
        cwd, target = install.outside, "test_my_backend.py"
        shutil.copy(ROOT / "examples" / "test_my_backend.py", cwd / target)
    command = [install.bin("python"), "-m", "pytest"] if how == "python -m pytest" else [install.bin("pytest")]
    result = run([*command, "-q", "-p", "no:cacheprovider", target], cwd=cwd, env=_env(install.venv),
                 timeout=RUN_TIMEOUT)
    assert result.returncode == 0 and "2 passed" in result.stdout, (
        f"exit {result.returncode} in {cwd}:\n{result.stdout[-5000:]}\n{result.stderr[-3000:]}")
