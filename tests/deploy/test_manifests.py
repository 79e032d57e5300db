"""deploy/: every manifest parses, agrees with the CLI (commands, flags, PROTOSERVE_*
variables, ports) and with the Services it names; the gateway ConfigMap is what
`make deploy-config` renders from envoy/ now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from service.cli import flags

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _render():
    spec = importlib.util.spec_from_file_location("envoy_render", REPO / "envoy" / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _documents() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


DOCS = _documents()
BY_KIND = {(d["kind"], d["metadata"]["name"]): d for d in DOCS}


def _containers(kind_name: tuple[str, str]) -> list[dict]:
    spec = BY_KIND[kind_name]["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_every_yaml_file_is_listed_and_parses() -> None:
    listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert {k for k, _ in BY_KIND} == {"Deployment", "Service", "ConfigMap"}


@pytest.mark.parametrize(
    "deployment", [n for k, n in BY_KIND if k == "Deployment"], ids=lambda n: n
)
def test_deployments_use_real_commands_flags_and_variables(deployment: str) -> None:
    parser_commands = {"serve": flags.SERVE, "grpc": flags.GRPC, "bridge": flags.BRIDGE}
    dep = BY_KIND[("Deployment", deployment)]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"] == labels
    for container in _containers(("Deployment", deployment)):
        if not container["image"].startswith("protoserve:") or "command" in container:
            continue
        command, *rest = container["args"]
        assert command in parser_commands
        known = {f"--{f.name}" for f in flags.FLAGS if command in f.commands}
        assert {a for a in rest if a.startswith("--")} <= known, rest
        env_known = {f.env for f in flags.FLAGS if command in f.commands}
        env_known |= {flags.MODEL_ENV, *flags.ENV_ALIASES.values()}
        assert {e["name"] for e in container.get("env", [])} <= env_known


def test_grpc_probes_and_service_match_the_grpc_port() -> None:
    [container] = _containers(("Deployment", "protoserve-grpc"))
    env = {e["name"]: e["value"] for e in container["env"]}
    port = int(env["PROTOSERVE_GRPC_PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port
    shutdown = float(env["PROTOSERVE_SHUTDOWN_TIMEOUT"])
    grace = BY_KIND[("Deployment", "protoserve-grpc")]["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] > shutdown
    service = BY_KIND[("Service", "protoserve-grpc")]["spec"]
    assert service["clusterIP"] == "None" and service["ports"][0]["port"] == port


def _service_port(target: str) -> None:
    host, port = target.rsplit(":", 1)
    service = BY_KIND[("Service", host)]["spec"]
    assert int(port) in {p["port"] for p in service["ports"]}, target


def test_targets_name_existing_services() -> None:
    render = _render()
    for target in (*render.KUBERNETES.grpc, render.KUBERNETES.bridge):
        _service_port(target)
    [bridge] = _containers(("Deployment", "protoserve-bridge"))
    _service_port(bridge["args"][bridge["args"].index("--grpc-target") + 1])
    gateway = _containers(("Deployment", "protoserve-gateway"))
    mounts = {m["mountPath"] for c in gateway for m in c.get("volumeMounts", [])}
    assert str(Path(render.KUBERNETES.descriptor).parent) in mounts


def test_gateway_config_is_fresh() -> None:
    render = _render()
    committed = (DEPLOY / "gateway-config.yaml").read_text()
    assert committed == render.configmap_text(render.KUBERNETES), "run `make deploy-config`"
    config = yaml.safe_load(committed)["data"]["envoy.yaml"]
    assert config == render.render_text(render.KUBERNETES)
