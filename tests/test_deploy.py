"""The deployment files, checked as far as a machine without a container engine or a GPU can.

Nothing here builds an image or starts a pod. What is checked: every file
parses; the settings file loads with edgetl's own Settings (unknown keys
fail); the commands the files run are real CLI commands with real flags; the
ports, probes, volumes and secret paths agree with each other and with the
server's defaults; the systemd unit runs as a non-root user and restarts.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from edgetl.cli import build_parser
from edgetl.settings import DEFAULT_PORT, Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ROOT = DEPLOY.parent
DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*"))


def _k8s() -> dict[str, dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def _parses(argv: list[str]) -> None:
    """The edgetl CLI accepts these arguments (argparse exits on an unknown flag)."""
    assert argv[0] == "edgetl"
    build_parser().parse_args(argv[1:])


def _dockerfile(path: Path) -> dict[str, list[str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


def _exec_form(value: str) -> list[str]:
    import json

    return json.loads(value[value.index("["):])


def test_there_is_an_image_for_x86_gpus_and_one_for_jetson():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cuda", "Dockerfile.jetson"]
    assert "tensorrt" in _dockerfile(DOCKERFILES[0])["FROM"][0] and "l4t-jetpack" in _dockerfile(DOCKERFILES[1])["FROM"][0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_the_real_server_as_non_root(dockerfile):
    d = _dockerfile(dockerfile)
    for copy in d["COPY"]:
        source = copy.split()[0]
        assert all((ROOT / s).exists() for s in copy.split()[:-1]), f"COPY {source}: not in the repository"
    assert "onnxruntime-gpu" in " ".join(d["RUN"]) and "'.[train]'" in " ".join(d["RUN"])
    assert d["USER"] == ["edgetl"] and "useradd" in " ".join(d["RUN"])
    entry = _exec_form(d["ENTRYPOINT"][0])
    _parses(entry)
    assert entry[1] == "serve" and entry[entry.index("--port") + 1] == str(DEFAULT_PORT)
    assert entry[entry.index("--data-dir") + 1] == "/var/lib/edgetl" == d["VOLUME"][0].strip('[]"')
    assert d["EXPOSE"] == [f"{DEFAULT_PORT} {Settings().metrics_port} {Settings().terminal_port}"]
    health = _exec_form(d["HEALTHCHECK"][0])
    _parses(health)
    assert health[health.index("--server") + 1] == f"localhost:{DEFAULT_PORT}"


def test_the_settings_file_loads_and_is_the_one_in_the_configmap(tmp_path):
    text = (DEPLOY / "config" / "edgetl.toml").read_text()
    assert _k8s()["ConfigMap"]["data"]["edgetl.toml"] == text
    settings = Settings.load(config=DEPLOY / "config" / "edgetl.toml")  # unknown keys would raise
    assert settings.host == "0.0.0.0" and settings.port == DEFAULT_PORT and settings.client_ca  # mutual TLS on the network
    assert set(settings.allowed_plugins) == {"efficientnet_lite0", "timm"}
    assert set(settings.identities.values()) <= {"inference", "operator", "admin"}
    # On the network the terminal must speak HTTPS: it takes the server's certificate.
    assert settings.terminal and settings.tls_cert and not settings.terminal_tls_cert


def test_kubernetes_daemonset_ports_probes_volumes_and_secrets_agree():
    docs = _k8s()
    assert {"Namespace", "ConfigMap", "DaemonSet", "Service"} <= set(docs)
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = tomllib.loads(docs["ConfigMap"]["data"]["edgetl.toml"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": settings["server"]["port"], "metrics": settings["server"]["metrics_port"], "terminal": settings["terminal"]["terminal_port"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1  # one server per GPU node
    assert pod["securityContext"]["runAsNonRoot"] is True

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts.values()) <= set(volumes)
    assert "hostPath" in volumes[mounts["/var/lib/edgetl"]]  # persistent per node
    assert volumes[mounts["/etc/edgetl"]]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    secret_dir = next(path for path, name in mounts.items() if "secret" in volumes[name])
    for key in ("tls_cert", "tls_key", "client_ca"):
        assert Path(settings["security"][key]).parent == Path(secret_dir)

    _parses(["edgetl", "serve", *container["args"]])
    assert container["args"][container["args"].index("--config") + 1] == "/etc/edgetl/edgetl.toml"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        _parses(command)
        assert command[1] == "health" and command[command.index("--server") + 1] == f"localhost:{ports['grpc']}"
        for flag, key in (("--tls-ca", "client_ca"), ("--tls-cert", "tls_cert"), ("--tls-key", "tls_key")):
            assert command[command.index(flag) + 1] == settings["security"][key]
    service_ports = {p["name"]: p["targetPort"] for p in docs["Service"]["spec"]["ports"]}
    assert set(service_ports.values()) <= set(ports)
    annotations = docs["DaemonSet"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]


def test_compose_file_agrees_with_the_image_and_the_settings():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["edgetl"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    _parses(["edgetl", "serve", *service["command"]])
    health = service["healthcheck"]["test"][1:]
    _parses(health)
    settings = tomllib.loads((DEPLOY / compose["configs"]["edgetl-config"]["file"]).read_text())
    targets = {s["target"] for s in service["secrets"]}
    assert {settings["security"][k] for k in ("tls_cert", "tls_key", "client_ca")} == targets
    assert {f"{p}:{p}" for p in (settings["server"]["port"], settings["server"]["metrics_port"], settings["terminal"]["terminal_port"])} == set(service["ports"])
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_systemd_unit_runs_as_a_service_user_and_restarts():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "edgetl.service").read_text())
    service = unit["Service"]
    assert service["User"] not in ("", "root") and service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "edgetl"
    _parses(["edgetl", *argv[1:]])
    assert argv[argv.index("--data-dir") + 1] == f"/var/lib/{service['StateDirectory']}"
    assert service["KillSignal"] == "SIGTERM"
