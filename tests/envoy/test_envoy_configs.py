"""Every config envoy/ can render passes `envoy --mode validate` (which loads the
descriptor set and checks the transcoder's services against it)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from envoy_stack import render, require_tool

CONFIGS = {
    "front": render.Options(),
    "replicas": render.Options(grpc=("127.0.0.1:50051", "127.0.0.1:50052")),
    "replicas-ring-hash": render.Options(grpc=("10.0.0.1:1", "10.0.0.2:1"), lb="ring_hash"),
    "kubernetes": render.KUBERNETES,
}


def validate(config: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    command = [require_tool("envoy"), "--mode", "validate", "-c", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", CONFIGS)
def test_rendered_config_validates(name: str, descriptor: Path, tmp_path: Path) -> None:
    options = dataclasses.replace(CONFIGS[name], descriptor=str(descriptor))
    text = render.render_text(options)
    assert "${" not in text
    result = validate(text, tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_validation_loads_the_descriptor(tmp_path: Path) -> None:
    options = dataclasses.replace(render.Options(), descriptor=str(tmp_path / "missing.binpb"))
    result = validate(render.render_text(options), tmp_path)
    assert result.returncode != 0 and "missing.binpb" in result.stdout + result.stderr


def test_pool_settings() -> None:
    def grpc_cluster(options: render.Options) -> dict:
        clusters = render.render(options)["static_resources"]["clusters"]
        return next(c for c in clusters if c["name"] == render.GRPC_CLUSTER)

    single = grpc_cluster(render.Options())
    assert "health_checks" not in single and single["type"] == "STATIC"
    pool = grpc_cluster(CONFIGS["replicas"])
    assert pool["lb_policy"] == "LEAST_REQUEST" and pool["health_checks"][0]["grpc_health_check"]
    assert pool["common_lb_config"]["healthy_panic_threshold"]["value"] == 0
    assert len(pool["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    ring = grpc_cluster(CONFIGS["replicas-ring-hash"])
    assert ring["lb_policy"] == "RING_HASH" and "least_request_lb_config" not in ring
    assert grpc_cluster(render.KUBERNETES)["type"] == "STRICT_DNS"
    # Outlier detection ejects a replica that resets or refuses connections (local-origin
    # and gateway failures), never one whose requests merely fail as requests (5xx).
    outlier = pool["outlier_detection"]
    assert outlier["consecutive_local_origin_failure"] == 2
    assert outlier["enforcing_consecutive_local_origin_failure"] == 100
    assert outlier["consecutive_gateway_failure"] == 2
    assert outlier["enforcing_consecutive_gateway_failure"] == 100
    assert outlier["enforcing_consecutive_5xx"] == 0 and outlier["max_ejection_percent"] == 50
    assert ring["outlier_detection"] == outlier and "outlier_detection" not in single


def test_retries_only_where_safe() -> None:
    """gRPC retries only what never ran (not sent, refused stream, reset before the request,
    UNAVAILABLE from a draining or loading replica), each on another replica; the bridge's
    HTTP routes retry only what never reached it."""
    host = render.render(CONFIGS["replicas"])["static_resources"]["listeners"][0]
    [manager] = host["filter_chains"][0]["filters"]
    routes = manager["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    by_prefix = {r["match"].get("prefix"): r for r in routes if "route" in r}
    grpc_retry = by_prefix["/protoserve."]["route"]["retry_policy"]
    assert set(grpc_retry["retry_on"].split(",")) == {
        "connect-failure", "refused-stream", "reset-before-request", "unavailable"
    }  # fmt: skip
    assert grpc_retry["num_retries"] == 2
    # P2C favours a draining replica: enough re-picks that a retry lands elsewhere.
    assert grpc_retry["host_selection_retry_max_attempts"] >= 20
    [predicate] = grpc_retry["retry_host_predicate"]
    assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
    for prefix in ("/v1/", "/v2/", "/"):
        retry = by_prefix[prefix]["route"]["retry_policy"]
        assert set(retry["retry_on"].split(",")) == {
            "connect-failure", "refused-stream", "reset-before-request"
        }, prefix  # fmt: skip
    assert "retry_policy" not in by_prefix["/v1/realtime"]["route"]  # a WebSocket: never
