"""Two `protoserve grpc` replicas behind Envoy (replicas.yaml): both get work; session
affinity with ring-hash (gRPC clients, and OpenAI clients through the REST bridge); one
replica stopped mid-run (SIGTERM: it drains, nothing fails;
SIGKILL: only its in-flight requests fail, and nothing after the health-check window)."""

from __future__ import annotations

import itertools
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from envoy_stack import Envoy, Process, Replica, free_port, require_tool, wait_until

from protoserve.common.v1 import params_pb2
from protoserve.generate.v1 import generate_pb2 as pb
from protoserve.generate.v1 import generate_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TOTAL, CONCURRENCY, RATE = 200, 8, 80.0  # requests, in flight at most, per second
STOP_AFTER = 1.0  # seconds into the run
REQUEST = pb.GenerateRequest(
    model="demo",
    text="The lighthouse keeper",
    stopping=params_pb2.StoppingParams(max_tokens=32, ignore_eos=True),
)


@dataclass
class Pool:
    envoy: Envoy
    replicas: list[Replica]

    def ensure_up(self) -> None:
        """Both replicas running and healthy in Envoy (a test may have stopped one)."""
        stopped = [r for r in self.replicas if not (r.process and r.process.alive)]
        for replica in stopped:
            replica.start()
        for replica in self.replicas:
            replica.wait_serving()
            self.envoy.wait_health(replica.target, healthy=True)

    def rq_total(self) -> dict[str, int]:
        return {host: int(v.get("rq_total", 0)) for host, v in self.envoy.hosts().items()}


@pytest.fixture(scope="module")
def pool(demo_model_dir: Path, descriptor: Path, envoy_logs: Path) -> Iterator[Pool]:
    require_tool("envoy")
    replicas = [Replica(demo_model_dir, envoy_logs, f"replica-{i}") for i in range(2)]
    envoy = None
    try:
        for replica in replicas:  # load in parallel
            replica.start()
        envoy = Envoy.start(envoy_logs, descriptor, [r.target for r in replicas])
        pool = Pool(envoy, replicas)
        pool.ensure_up()
        yield pool
    finally:
        # Replicas first: their drain waits for Envoy's health checks to see NOT_SERVING.
        for replica in replicas:
            if replica.process and replica.process.alive:
                replica.process.send(signal.SIGTERM)
        for replica in replicas:
            replica.stop()
        if envoy is not None:
            envoy.process.stop()


@dataclass(frozen=True)
class Outcome:
    request_id: str
    start: float
    end: float
    code: grpc.StatusCode
    detail: str


def run_load(
    target: str, run: str, at: Callable[[], None] | None = None, session: str | None = None
) -> list[Outcome]:
    """TOTAL unary Generates, paced at RATE, CONCURRENCY at a time; `at` runs STOP_AFTER
    seconds in."""
    indices, lock, t0 = itertools.count(), threading.Lock(), time.monotonic()
    outcomes: list[Outcome] = []
    metadata = (("x-session-id", session),) if session else ()

    def worker(stub: generate_pb2_grpc.GenerateServiceStub) -> None:
        while (i := next(indices)) < TOTAL:
            time.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
            request_id, start = f"{run}-{i}", time.monotonic()
            try:
                stub.Generate(
                    REQUEST, metadata=(("x-request-id", request_id), *metadata), timeout=30
                )
                code, detail = grpc.StatusCode.OK, ""
            except grpc.RpcError as error:
                code, detail = error.code(), error.details()
            with lock:
                outcomes.append(Outcome(request_id, start, time.monotonic(), code, detail))

    with grpc.insecure_channel(target) as channel:
        stub = generate_pb2_grpc.GenerateServiceStub(channel)
        with ThreadPoolExecutor(CONCURRENCY + 1) as executor:
            workers = [executor.submit(worker, stub) for _ in range(CONCURRENCY)]
            if at is not None:
                time.sleep(STOP_AFTER)
                at()
            for future in workers:
                future.result()
    assert len(outcomes) == TOTAL
    return outcomes


def watch_health(envoy: Envoy, target: str, stop: threading.Event) -> list[float]:
    """Starts a thread that records when Envoy first sees `target` unhealthy."""
    seen: list[float] = []

    def poll() -> None:
        while not stop.is_set() and not seen:
            if not envoy.healthy(target):
                seen.append(time.monotonic())
            time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()
    return seen


def write_results(log_dir: Path, name: str, report: dict) -> dict:
    """The run's counts, kept beside the Envoy logs (<log dir>/<name>-results.json)."""
    (log_dir / f"{name}-results.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def upstream_of(envoy: Envoy, request_ids: set[str]) -> dict[str, str]:
    """request id -> the replica Envoy sent it to, from the access log."""
    time.sleep(0.3)  # the access log flushes every 100 ms
    found = {}
    for line in envoy.access_log():
        match = re.search(r"\] (\S+) .* upstream=(\S+)", line)
        if match and match.group(1) in request_ids:
            found[match.group(1)] = match.group(2)
    return found


def test_ring_hash_keeps_a_session_on_one_replica(pool: Pool, envoy_logs, descriptor) -> None:
    pool.ensure_up()
    ring = Envoy.start(envoy_logs, descriptor, [r.target for r in pool.replicas], lb="ring_hash")
    try:
        for replica in pool.replicas:
            ring.wait_health(replica.target, healthy=True)
        with grpc.insecure_channel(ring.grpc_target) as channel:
            stub = generate_pb2_grpc.GenerateServiceStub(channel)
            short = pb.GenerateRequest(text="x", stopping=params_pb2.StoppingParams(max_tokens=1))
            before = {h: int(v.get("rq_total", 0)) for h, v in ring.hosts().items()}
            for _ in range(12):
                stub.Generate(short, metadata=(("x-session-id", "conversation-7"),), timeout=30)
            after = {h: int(v.get("rq_total", 0)) for h, v in ring.hosts().items()}
            assert sorted(after[h] - before[h] for h in after) == [0, 12]
            for i in range(24):
                stub.Generate(short, metadata=(("x-session-id", f"s{i}"),), timeout=30)
            spread = {h: int(v.get("rq_total", 0)) - after[h] for h, v in ring.hosts().items()}
            assert all(n > 0 for n in spread.values()), spread
        _openai_session_keeps_its_replica(ring, envoy_logs)
    finally:
        ring.process.stop()


def _openai_session_keeps_its_replica(ring: Envoy, log_dir: Path) -> None:
    """A REST bridge in front of the ring-hash Envoy passes the client's x-session-id on:
    an OpenAI client's session stays on one replica too."""
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "bridge", "--grpc-target", ring.grpc_target,
               "--host", "127.0.0.1", "--port", str(port), "--log-format", "json"]  # fmt: skip
    bridge = Process("bridge", command, log_dir / f"bridge-{port}.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200,
                   "bridge /health 200", bridge, 60)  # fmt: skip
        body = {"model": "demo", "prompt": "x", "max_tokens": 1}
        before = {h: int(v.get("rq_total", 0)) for h, v in ring.hosts().items()}
        for _ in range(8):
            reply = httpx.post(f"{url}/v1/completions", json=body, timeout=30,
                               headers={"x-session-id": "openai-conversation"})  # fmt: skip
            assert reply.status_code == 200, reply.text
        after = {h: int(v.get("rq_total", 0)) for h, v in ring.hosts().items()}
        assert sorted(after[h] - before[h] for h in after) == [0, 8], (before, after)
    finally:
        bridge.stop()


def test_sigterm_mid_run_drains_without_failures(pool: Pool, envoy_logs: Path) -> None:
    pool.ensure_up()
    victim = pool.replicas[0]
    before = pool.rq_total()
    snapshot: dict[str, int] = {}
    stop_watch = threading.Event()
    seen = watch_health(pool.envoy, victim.target, stop_watch)

    t_stop = []

    def stop() -> None:
        snapshot.update(pool.rq_total())
        t_stop.append(time.monotonic())
        victim.process.send(signal.SIGTERM)

    outcomes = run_load(pool.envoy.grpc_target, "term", at=stop)
    stop_watch.set()
    served = {h: snapshot[h] - before.get(h, 0) for h in snapshot}
    failures = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    report = write_results(envoy_logs, "sigterm", {
        "requests": TOTAL, "served_before_the_stop": served, "failed": len(failures),
        "failures": [(o.request_id, round(o.start - t_stop[0], 3), o.code.name, o.detail)
                     for o in failures],
    })  # fmt: skip
    assert all(n > 0 for n in served.values()) and len(served) == 2, report
    assert not failures, report
    assert victim.process.wait(30) == 0
    assert seen, "envoy never marked the drained replica unhealthy"


def test_sigkill_mid_run_fails_only_in_flight_requests(pool: Pool, envoy_logs: Path) -> None:
    pool.ensure_up()
    victim = pool.replicas[0]
    killed_at: list[float] = []
    stop_watch = threading.Event()
    seen = watch_health(pool.envoy, victim.target, stop_watch)

    def kill() -> None:
        killed_at.append(time.monotonic())
        victim.process.send(signal.SIGKILL)
        victim.process.wait(10)  # dying takes tens of ms: the kill lasts until reaped
        killed_at.append(time.monotonic())

    outcomes = run_load(pool.envoy.grpc_target, "kill", at=kill)
    stop_watch.set()
    assert seen, "envoy never marked the killed replica unhealthy"
    (kill_time, dead), flagged = killed_at, seen[0]
    failures = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    in_flight = [o for o in outcomes if o.start <= dead and o.end >= kill_time]
    hosts = upstream_of(pool.envoy, {o.request_id for o in failures + in_flight})
    on_victim = [o for o in in_flight if hosts.get(o.request_id) == victim.target]
    after_window = [o for o in outcomes if o.start > flagged]
    report = write_results(envoy_logs, "sigkill", {
        "requests": TOTAL, "failed": len(failures),
        "failures_by_code": dict(Counter(o.code.name for o in failures)),
        "in_flight_at_the_kill": len(in_flight), "in_flight_on_the_killed_replica": len(on_victim),
        "seconds_until_envoy_took_it_out": round(flagged - kill_time, 3),
        "requests_after_that": len(after_window),
        "failed_after_that": sum(o.code != grpc.StatusCode.OK for o in after_window),
        "failures_not_in_flight_on_it": sorted(
            {o.request_id for o in failures} - {o.request_id for o in on_victim}),
    })  # fmt: skip
    assert after_window, f"the run ended before envoy took the replica out: {report}"
    assert report["failed_after_that"] == 0, report
    assert not report["failures_not_in_flight_on_it"], report
