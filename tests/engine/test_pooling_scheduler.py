"""Dynamic batching of pooling requests: length-homogeneous batches under the padded
token budget, the most urgent request always in the next batch."""

from __future__ import annotations

from engine.config import SchedulerConfig
from engine.pooling.params import PoolingParams
from engine.pooling.scheduler import PoolingScheduler


def scheduler(budget: int = 64, seqs: int = 8, policy: str = "fcfs") -> PoolingScheduler:
    return PoolingScheduler(SchedulerConfig(seqs, budget, policy=policy))


def add(s: PoolingScheduler, lengths: list[int], priority: int = 0) -> None:
    for n in lengths:
        s.add(f"len{n}-{s.num_waiting}", [1] * n, PoolingParams(), priority)


def lengths_of(batch) -> list[int]:
    return [r.num_tokens for r in batch]


def test_batches_group_similar_lengths_under_the_budget() -> None:
    s = scheduler(budget=64)
    add(s, [30, 2, 31, 3, 15, 4, 16])
    batches = []
    while s.num_waiting:
        batch = s.schedule()
        assert len(batch) * max(lengths_of(batch)) <= 64
        batches.append(sorted(lengths_of(batch)))
    # The oldest (30) goes first, with its neighbour in length; short ones go together.
    assert batches == [[30, 31], [2, 3, 4, 15], [16]]


def test_max_num_seqs_caps_a_batch() -> None:
    s = scheduler(budget=1000, seqs=3)
    add(s, [5] * 7)
    assert [len(s.schedule()) for _ in range(3)] == [3, 3, 1]


def test_priority_policy_serves_the_lowest_priority_value_first() -> None:
    s = scheduler(budget=10, policy="priority")
    add(s, [10], priority=5)
    add(s, [10], priority=-1)
    assert s.schedule()[0].priority == -1


def test_remove_drops_a_waiting_request() -> None:
    s = scheduler()
    add(s, [4, 5])
    first = next(iter(s._waiting))
    assert s.remove(first) is not None and s.remove(first) is None
    assert s.num_waiting == 1
