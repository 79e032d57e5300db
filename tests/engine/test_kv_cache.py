"""Block pool and per-request tables: exact block ids, growth, freeing, integrity."""

from __future__ import annotations

import pytest
import torch

from engine.kv_cache import KVCacheManager, allocate_kv_tensors, bytes_per_block


def test_allocate_as_you_grow_with_exact_block_ids() -> None:
    kv = KVCacheManager(num_blocks=6, block_size=4)
    assert kv.allocate_slots("a", 5)  # 2 blocks
    assert kv.block_ids("a") == [0, 1]
    assert kv.allocate_slots("a", 8)  # still fits in 2 blocks
    assert kv.block_ids("a") == [0, 1]
    assert kv.allocate_slots("b", 1)
    assert kv.allocate_slots("a", 9)  # a third block, after b's
    assert kv.block_ids("a") == [0, 1, 3] and kv.block_ids("b") == [2]
    assert kv.num_free_blocks == 2
    kv.check_integrity()


def test_refuses_without_partial_allocation() -> None:
    kv = KVCacheManager(num_blocks=3, block_size=4)
    assert kv.allocate_slots("a", 8)
    assert not kv.can_allocate("b", 9)
    assert not kv.allocate_slots("b", 9)
    assert kv.block_ids("b") == [] and kv.num_free_blocks == 1
    assert kv.can_allocate("b", 4)
    kv.check_integrity()


def test_free_returns_blocks_and_is_idempotent() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    kv.allocate_slots("a", 4)
    kv.allocate_slots("b", 3)
    kv.free("a")
    kv.free("a")
    assert kv.num_free_blocks == 2
    kv.check_integrity()
    kv.free("b")
    assert kv.num_free_blocks == 4
    kv.check_integrity()
    # Freed tail-first; reallocation takes the free queue in order.
    kv.allocate_slots("c", 8)
    assert sorted(kv.block_ids("c")) == [0, 1, 2, 3]


def test_integrity_check_catches_corruption() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    kv.allocate_slots("a", 4)
    kv.pool.blocks[0].ref_count = 0  # owned but looks free
    with pytest.raises(AssertionError):
        kv.check_integrity()


def test_kv_tensors_are_zeroed_with_the_paged_shape() -> None:
    caches = allocate_kv_tensors(
        3,
        num_blocks=5,
        block_size=4,
        num_kv_heads=2,
        head_dim=8,
        dtype=torch.float32,
        device=torch.device("cpu"),
    )
    assert len(caches) == 3
    for k, v in caches:
        assert k.shape == v.shape == (5, 4, 2, 8)
        assert not k.any() and not v.any()
    assert bytes_per_block(3, 4, 2, 8, torch.float32) == 2 * 3 * 4 * 2 * 8 * 4
