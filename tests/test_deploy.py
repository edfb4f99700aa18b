"""deploy/: the Kubernetes Indexed Job and the Dockerfile, checked as far as
this machine can without a cluster or a Docker daemon: the manifest against
the Kubernetes API schema (strict: no unknown fields), its configs through the
real config classes, its container arguments through the real CLI, and a pod's
contract (generate, then send as shard JOB_COMPLETION_INDEX of TELEGEN_SHARDS)
run for real against a local sink."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from telegen.cli import build_parser
from telegen.generate.config import GeneratorConfig
from telegen.send.config import SenderConfig
from telegen.sink import Sink

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "kubernetes" / "telegen-fleet-job.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBERNETES_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


def pod_spec(documents) -> dict:
    return documents["Job"]["spec"]["template"]["spec"]


def container_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_manifest_is_valid_kubernetes(documents):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert set(documents) == {"ConfigMap", "Job"}
    for doc in documents.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_job_is_an_indexed_fleet(documents):
    spec = documents["Job"]["spec"]
    send = pod_spec(documents)["containers"][0]
    shards = int(container_env(send)["TELEGEN_SHARDS"])
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == shards
    mounts = {m["name"] for m in send["volumeMounts"]}
    assert mounts == {v["name"] for v in pod_spec(documents)["volumes"]}


def test_configs_and_arguments_are_telegen_s_own(documents):
    data = documents["ConfigMap"]["data"]
    generator = GeneratorConfig.from_yaml(data["generator.yaml"])
    env = {"OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true", "TELEGEN_SHARDS": "8",
           "JOB_COMPLETION_INDEX": "5"}
    sender = SenderConfig.from_yaml(data["send.yaml"], env=env)
    assert sender.sending.shard.index == 5 and sender.sending.shard.count == 8
    assert sender.input.directory == generator.output.directory == "/templates"
    spec = pod_spec(documents)
    parser = build_parser()
    for container in (*spec["initContainers"], *spec["containers"]):
        parser.parse_args(container["args"])  # exits (SystemExit) on an argument telegen does not take


def test_a_pod_generates_then_sends_its_shard(documents, tmp_path):
    """What each pod runs, with the paths moved into tmp_path, the rate and
    duration cut down, and two of the eight shards against a local sink."""
    data = documents["ConfigMap"]["data"]
    (tmp_path / "generator.yaml").write_text(data["generator.yaml"].replace("/templates", str(tmp_path / "t")))
    (tmp_path / "send.yaml").write_text(data["send.yaml"].replace("/templates", str(tmp_path / "t")))
    spec = pod_spec(documents)
    generate = [arg.replace("/config", str(tmp_path)).replace("/templates", str(tmp_path / "t"))
                for arg in spec["initContainers"][0]["args"]]
    subprocess.run([sys.executable, "-m", "telegen", *generate], check=True, capture_output=True, timeout=120)
    send = spec["containers"][0]
    with Sink() as sink:
        pods = []
        for index in (2, 7):
            env = {**os.environ, **container_env(send), "OTLP_ENDPOINT": sink.endpoint,
                   "JOB_COMPLETION_INDEX": str(index)}
            args = [arg.replace("/config", str(tmp_path)) for arg in send["args"]]
            pods.append(subprocess.run([sys.executable, "-m", "telegen", *args, "--duration", "2s", "--rate", "80000"],
                                       capture_output=True, text=True, env=env, timeout=120))
        received = sum(s.events for s in sink.stats().signals().values())
    for index, pod in zip((2, 7), pods):
        assert pod.returncode == 0, pod.stderr
        assert f"Shard {index}/8: sending to {sink.endpoint}" in pod.stdout
        assert "10,000 events/s (1/8 of the fleet-wide 80,000)" in pod.stdout
        assert re.search(r"numbered \d+\.\.\d+ of the fleet's 32", pod.stdout)
    assert received > 0


def test_dockerfile_installs_as_the_readme_says():
    text = DOCKERFILE.read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", text)
    assert "pip install ." in (ROOT / "README.md").read_text()
    assert 'ENTRYPOINT ["telegen"]' in text
