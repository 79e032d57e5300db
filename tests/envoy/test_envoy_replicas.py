"""Two `protoserve grpc` replicas behind Envoy (replicas.yaml): both get work; session
affinity with ring-hash; one replica stopped mid-run (SIGTERM: it drains, nothing fails;
SIGKILL: only its in-flight requests fail, and nothing after the health-check window)."""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from envoy_stack import Envoy, Replica, require_tool

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
    finally:
        ring.process.stop()


def test_sigterm_mid_run_drains_without_failures(pool: Pool) -> None:
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
    assert all(n > 0 for n in served.values()) and len(served) == 2, served
    failures = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    print(f"\nSIGTERM: served before the stop {served}; failures {len(failures)}/{TOTAL}")
    assert not failures, [(o.request_id, o.start - t_stop[0], o.code, o.detail) for o in failures]
    assert victim.process.wait(30) == 0
    assert seen, "envoy never marked the drained replica unhealthy"


def test_sigkill_mid_run_fails_only_in_flight_requests(pool: Pool) -> None:
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
    print(
        f"\nSIGKILL: {len(failures)}/{TOTAL} failed; in flight at the kill {len(in_flight)} "
        f"({len(on_victim)} on the killed replica); envoy took it out after "
        f"{flagged - kill_time:.2f}s; {len(after_window)} requests after that, "
        f"{sum(o.code != grpc.StatusCode.OK for o in after_window)} failed; "
        f"failures: {dict(Counter(o.code.name for o in failures))}"
    )
    assert all(o.code == grpc.StatusCode.OK for o in after_window)
    assert {o.request_id for o in failures} <= {o.request_id for o in on_victim}
