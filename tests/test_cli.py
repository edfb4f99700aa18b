"""The CLI as a user runs it: real processes, exit codes, messages, files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from telegen.cli import main, telemetry_generator_main

SMALL = """
seed: 5
traces:
  count: 20
  spans: {avg_per_trace: 6, std_dev: 2, high_span_traces: {enabled: false}}
metrics:
  metric_count: 5
  timeseries_per_metric: {min: 2, max: 6, default: 4}
logs:
  count: 50
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "telegen", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(SMALL)
    return path


def test_generate_writes_templates(tmp_path, config_file):
    out = tmp_path / "out"
    result = run_cli("generate", "--config", str(config_file), "--output-dir", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert "20 traces" in result.stdout and "50 log records" in result.stdout
    for name in ("telemetry-traces.pb", "telemetry-metrics.pb", "telemetry-logs.pb",
                 "telemetry-traces.json", "metadata.yaml"):
        assert (out / name).stat().st_size > 0, name
    inspect = run_cli("inspect", str(out))
    assert inspect.returncode == 0, inspect.stderr
    assert "20 traces" in inspect.stdout and "Sample trace" in inspect.stdout


def test_default_output_directory_is_the_current_directory(tmp_path, config_file):
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("generate", "--config", str(config_file), cwd=work)
    assert result.returncode == 0, result.stderr
    assert (work / "telemetry-traces.pb").exists()


def test_output_directory_from_config_and_override(tmp_path, config_file):
    config_file.write_text(SMALL + "output: {directory: from-config, prefix: run1}\n")
    assert run_cli("generate", "--config", str(config_file), cwd=tmp_path).returncode == 0
    assert (tmp_path / "from-config" / "run1-traces.pb").exists()
    assert run_cli("generate", "--config", str(config_file), "--output-dir", "flag", cwd=tmp_path).returncode == 0
    assert (tmp_path / "flag" / "run1-traces.pb").exists()


def test_seed_flag_makes_output_reproducible(tmp_path, config_file):
    for name in ("a", "b", "c"):
        seed = "99" if name != "c" else "100"
        assert run_cli("generate", "--config", str(config_file), "--seed", seed,
                       "--output-dir", str(tmp_path / name)).returncode == 0
    for signal in ("traces", "metrics", "logs"):
        a = (tmp_path / "a" / f"telemetry-{signal}.pb").read_bytes()
        assert a == (tmp_path / "b" / f"telemetry-{signal}.pb").read_bytes()
        assert a != (tmp_path / "c" / f"telemetry-{signal}.pb").read_bytes()


@pytest.mark.parametrize("content,message", [
    ("traces: {count: -5}\n", r"traces\.count: -5"),
    ("traces: {spanz: {}}\n", r"traces\.spanz.*did you mean traces\.spans"),
    ("traces: {count: [1\n", r"line \d+"),
    ("traces: {spans: {std_dev: -1}}\n", r"traces\.spans\.std_dev: -1"),
    ("metrics: {timeseries_per_metric: {min: 50, max: 10}}\n", r"timeseries_per_metric"),
    ("logs: {types: {http_access: {percentage: 50}}}\n", r"logs\.types"),
    ("traces: {services: {ingress: {service: nope}}}\n", r"traces\.services\.ingress\.service: 'nope'|nope"),
])
def test_bad_config_exits_2_with_one_message(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    out = tmp_path / "out"
    result = run_cli("generate", "--config", str(path), "--output-dir", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("telegen: error: ")
    import re
    assert re.search(message, result.stderr), result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_missing_config_file(tmp_path):
    result = run_cli("generate", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "not found" in result.stderr and "missing.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_is_required():
    result = run_cli("generate")
    assert result.returncode == 2
    assert "--config" in result.stderr


def test_unwritable_output_directory(tmp_path, config_file):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("generate", "--config", str(config_file), "--output-dir", str(blocker / "out"))
    assert result.returncode == 2
    assert "not writable" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "file"]


def test_failed_write_leaves_no_partial_files(tmp_path, config_file):
    """A real write failure (file-size limit, EFBIG) mid-save: exit 2, and
    neither final nor temporary files remain."""
    import resource

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "telegen", "generate", "--config", str(config_file),
                             "--output-dir", str(out), "--json"],
                            capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)
    assert result.returncode == 2, result.stderr
    assert "cannot write templates" in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_inspect_missing_directory(tmp_path):
    result = run_cli("inspect", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "template directory not found" in result.stderr


def test_telemetry_generator_wrapper(tmp_path, config_file, capsys):
    assert telemetry_generator_main(["--config", str(config_file), "--output-dir", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "telemetry-logs.pb").exists()
    assert main(["generate", "--config", str(config_file), "--output-dir", str(tmp_path / "m")]) == 0
    for signal in ("traces", "metrics", "logs"):
        assert (tmp_path / "w" / f"telemetry-{signal}.pb").read_bytes() == \
            (tmp_path / "m" / f"telemetry-{signal}.pb").read_bytes()
    assert telemetry_generator_main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert "telemetry-generator: error:" in capsys.readouterr().err


def test_inspect_into_a_closed_pipe_exits_quietly(tmp_path, config_file):
    out = tmp_path / "out"
    assert run_cli("generate", "--config", str(config_file), "--output-dir", str(out)).returncode == 0
    # `telegen inspect DIR | head -0`: the reader is gone before anything is written.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run([sys.executable, "-m", "telegen", "inspect", str(out)], stdout=writer,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(writer)
    assert result.returncode == 141 and result.stderr == ""
