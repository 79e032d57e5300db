"""Latency Envoy adds in front of protoserve: unary calls and streamed tokens, gRPC
direct vs gRPC through Envoy vs JSON through Envoy's transcoder (SSE for streams).

    python benchmarks/envoy_latency.py [--model DIR] [--requests 400] [--streams 40]

Starts `protoserve grpc` (the demo model unless --model) and Envoy (envoy/front.yaml)
on free ports, alternates the paths call by call (A B C A B C ...) so background load
hits them alike, prints p50/p90 and the p50 difference, and stops both.

- unary: one Generate of 1 token, sequential, wall time per call.
- streamed tokens: GenerateStream of --tokens tokens; the first token's arrival (from
  the call's start: what the hop adds to each message's delivery) and the gaps between
  tokens (whether the path slows the pacing; on a small box Envoy competes with the
  engine for CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

REPO = Path(__file__).resolve().parents[1]


def _module(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (grpc.RpcError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


def start_stack(model: Path, workdir: Path) -> tuple[list[subprocess.Popen], str, int]:
    """protoserve grpc + Envoy; returns the processes, the gRPC target, Envoy's port."""
    render = _module("envoy/render.py", "envoy_render")
    build = _module("proto/build.py", "proto_build")
    descriptor = workdir / "protoserve.binpb"
    build.descriptor_set(descriptor)
    grpc_port, envoy_port, admin_port = _free_port(), _free_port(), _free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "grpc", str(model), "--served-model-name", "demo"]
        + ["--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "service.log").open("wb"),
    )
    options = render.Options(
        listen=f"127.0.0.1:{envoy_port}",
        admin=f"127.0.0.1:{admin_port}",
        grpc=(f"127.0.0.1:{grpc_port}",),
        descriptor=str(descriptor),
    )
    config = workdir / "envoy.yaml"
    config.write_text(render.render_text(options))
    envoy = subprocess.Popen(
        [shutil.which("envoy") or "envoy", "-c", str(config), "--disable-hot-restart"]
        + ["--concurrency", "1", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "envoy.log").open("wb"),
    )
    target = f"127.0.0.1:{grpc_port}"

    def serving() -> bool:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    _wait(serving, "protoserve serving")
    _wait(lambda: httpx.get(f"http://127.0.0.1:{admin_port}/ready").text == "LIVE\n", "envoy")
    return [envoy, service], target, envoy_port


def _request(tokens: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        model="demo",
        text="The lighthouse keeper",
        sampling=params_pb2.SamplingParams(temperature=0),
        stopping=params_pb2.StoppingParams(max_tokens=tokens, ignore_eos=True),
    )


def _json_body(tokens: int) -> dict:
    return {
        "model": "demo",
        "text": "The lighthouse keeper",
        "sampling": {"temperature": 0},
        "stopping": {"max_tokens": tokens, "ignore_eos": True},
    }


class Paths:
    """The three ways in, each with a kept-alive connection."""

    def __init__(self, direct: str, envoy_port: int) -> None:
        self._channels = [grpc.insecure_channel(t) for t in (direct, f"127.0.0.1:{envoy_port}")]
        self.direct, self.envoy = (generate_pb2_grpc.GenerateServiceStub(c) for c in self._channels)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{envoy_port}", timeout=60)

    def unary(self, name: str, tokens: int) -> float:
        start = time.perf_counter()
        if name == "json via envoy":
            assert self.http.post("/api/v1/generate", json=_json_body(tokens)).status_code == 200
        else:
            getattr(self, name.split()[-1]).Generate(_request(tokens), timeout=60)
        return time.perf_counter() - start

    def stream(self, name: str, tokens: int) -> list[float]:
        """Arrival time of each token (seconds from the call's start)."""
        start, arrivals = time.perf_counter(), []
        if name == "json via envoy":
            with self.http.stream("POST", "/api/v1/generate:stream", json=_json_body(tokens)) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and '"delta"' in line:
                        count = len(json.loads(line[6:])["delta"]["token_ids"])
                        arrivals += [time.perf_counter() - start] * count
        else:
            stub = getattr(self, name.split()[-1])
            for event in stub.GenerateStream(_request(tokens), timeout=60):
                if event.WhichOneof("event") == "delta":
                    arrivals += [time.perf_counter() - start] * len(event.delta.token_ids)
        assert len(arrivals) == tokens, (name, len(arrivals))
        return arrivals

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        self.http.close()


PATHS = ("grpc direct", "grpc via envoy", "json via envoy")


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def measure(paths: Paths, requests: int, streams: int, tokens: int, warmup: int) -> dict:
    for _ in range(warmup):
        for name in PATHS:
            paths.unary(name, 1)
            paths.stream(name, 4)
    unary: dict[str, list[float]] = {name: [] for name in PATHS}
    for _ in range(requests):
        for name in PATHS:
            unary[name].append(paths.unary(name, 1))
    arrivals: dict[str, list[list[float]]] = {name: [] for name in PATHS}
    for _ in range(streams):
        for name in PATHS:
            arrivals[name].append(paths.stream(name, tokens))
    return {"unary": unary, "arrivals": arrivals}


def report(results: dict, tokens: int) -> str:
    """p50s and what each path adds to gRPC direct: per unary call, to the first
    streamed token (the hop), to the gap between streamed tokens (the pacing)."""
    unary, arrivals = results["unary"], results["arrivals"]
    first = {name: [run[0] for run in runs] for name, runs in arrivals.items()}
    gaps = {
        name: [b - a for run in runs for a, b in zip(run, run[1:], strict=False)]
        for name, runs in arrivals.items()
    }
    rows = [("unary Generate, 1 token", unary), ("stream: first token", first)]
    rows.append((f"stream: token gap ({tokens}/stream)", gaps))
    lines = [f"{'ms':<34}{'p50':>9}{'p90':>9}{'added p50':>11}"]
    for title, samples in rows:
        lines.append(title)
        base = statistics.median(samples["grpc direct"])
        for name in PATHS:
            p50, p90 = statistics.median(samples[name]), _p90(samples[name])
            added = (p50 - base) * 1e3
            lines.append(f"  {name:<32}{p50 * 1e3:>9.3f}{p90 * 1e3:>9.3f}{added:>+11.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: the demo model)")
    parser.add_argument("--requests", type=int, default=400, help="unary calls per path")
    parser.add_argument("--streams", type=int, default=40, help="streams per path")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per stream")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="envoy-latency-") as tmp:
        workdir = Path(tmp)
        model = args.model
        if model is None:
            from service.demo_model import build_demo_model

            model = build_demo_model(workdir / "demo")
        processes, target, envoy_port = start_stack(model, workdir)
        try:
            paths = Paths(target, envoy_port)
            results = measure(paths, args.requests, args.streams, args.tokens, args.warmup)
            paths.close()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    print(report(results, args.tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
