"""telegen's pytest plugin, as a user meets it: a fresh test file in a fresh
directory, the fixtures found through the installed entry point."""
from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_my_backend.py"


def test_the_example_harness_passes_from_a_fresh_directory(pytester):
    pytester.makepyfile(test_backend=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_generated_templates_can_be_chosen_in_a_conftest(pytester):
    pytester.makeconftest('''
import pytest
from telegen.generate.config import (GeneratorConfig, HighSpanTracesConfig, LogsConfig, MetricsConfig,
                                     SpansConfig, TracesConfig)

@pytest.fixture(scope="session")
def telegen_generator_config():
    return GeneratorConfig(seed=9, traces=TracesConfig(count=3, spans=SpansConfig(
        high_span_traces=HighSpanTracesConfig(enabled=False))), metrics=MetricsConfig(metric_count=5),
        logs=LogsConfig(count=7))
''')
    pytester.makepyfile(test_counts='''
def test_counts(telegen_templates, telegen_sink, telegen_send):
    assert telegen_templates.counts["traces"] == 3 and telegen_templates.counts["logs"] == 7
    assert (telegen_templates.directory / "metadata.yaml").exists()
    report = telegen_send(telegen_sink, seconds=1, protocol="http")
    assert report.signals["logs"].delivered == telegen_sink.stats().logs.events > 0
    assert report.signals["logs"].delivered % 7 == 0  # whole passes over the 7 records

def test_a_fresh_sink_per_test(telegen_sink):
    assert telegen_sink.stats().logs.events == 0
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_staged_send_from_a_test_file(pytester):
    pytester.makepyfile(test_ramp='''
def test_ramp(telegen_sink, telegen_send):
    report = telegen_send(telegen_sink, sending={"stages": [{"duration": 1, "events_per_second": 4000},
                                                            {"duration": 1, "events_per_second": 4000}]},
                          thresholds={"max_failed_ratio": 0})
    assert [stage.number for stage in report.stages] == [1, 2] and report.breaches == []
    assert sum(stage.delivered for stage in report.stages) == report.delivered > 0
''')
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
