"""Block pool and per-request tables: exact block ids, growth, freeing, integrity; prefix
caching: hashing, sharing with reference counts, LRU eviction order."""

from __future__ import annotations

import pytest
import torch

from engine.block_hash import extend_block_hashes, hash_block, root_hash
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
    assert not kv.allocate_slots("b", 9)
    assert kv.block_ids("b") == [] and kv.num_free_blocks == 1 and not kv.holds("b")
    assert kv.allocate_slots("b", 4)
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
    # Freed tail-first (a: 1, 0; then b: 3, 2); reallocation takes the queue in order.
    assert kv.pool.free_block_ids() == [1, 0, 3, 2]
    kv.allocate_slots("c", 8)
    assert kv.block_ids("c") == [1, 0, 3, 2]


def test_integrity_check_catches_corruption() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    kv.allocate_slots("a", 4)
    kv.pool.blocks[0].ref_count = 0  # owned but looks free
    with pytest.raises(AssertionError):
        kv.check_integrity()


def _hashes(tokens: list[int], block_size: int, salt: str | None = None) -> list[bytes]:
    hashes: list[bytes] = []
    extend_block_hashes(hashes, tokens, block_size, salt)
    return hashes


def _run(kv: KVCacheManager, request_id: str, tokens: list[int], prefix_ok: bool = True) -> int:
    """Admit `tokens` as the scheduler would (prefix lookup, leaving one token), mark
    them computed; returns the tokens found in the cache."""
    hashes = _hashes(tokens, kv.block_size)
    prefix = kv.find_cached_prefix(hashes, len(tokens) - 1)
    assert kv.allocate_slots(request_id, len(tokens), prefix) == prefix_ok
    if prefix_ok:
        kv.cache_full_blocks(request_id, hashes, len(tokens))
    kv.check_integrity()
    return prefix.num_tokens


def test_hashes_chain_over_the_prefix_and_the_salt() -> None:
    assert len(_hashes(list(range(11)), 4)) == 2  # the partial third block waits
    first, second = _hashes([1, 2, 3, 4, 5, 6, 7, 8], 4)
    assert first == hash_block(root_hash(None), [1, 2, 3, 4])
    assert second == hash_block(first, [5, 6, 7, 8])
    assert _hashes([9, 9, 9, 9, 5, 6, 7, 8], 4)[1] != second  # same block, other prefix
    assert _hashes([1, 2, 3, 4], 4, salt="x") != [first]
    assert _hashes([1, 2, 3, 4], 4, salt="x") == _hashes([1, 2, 3, 4], 4, salt="x")
    grown = [first]
    extend_block_hashes(grown, [5, 6, 7, 8, 9], 4, None)  # continues from the last hash
    assert grown == [first, second]


def test_shared_prefix_blocks_are_reference_counted() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=4)
    shared = list(range(100, 108))
    assert _run(kv, "a", shared + [1, 2]) == 0  # blocks 0, 1 (cached), 2 (partial)
    assert _run(kv, "b", shared + [3, 4, 5]) == 8  # shares 0, 1; gets 3 of its own
    assert kv.block_ids("a") == [0, 1, 2] and kv.block_ids("b") == [0, 1, 3]
    assert [kv.pool.blocks[i].ref_count for i in range(4)] == [2, 2, 1, 1]
    kv.free("a")  # b's shared blocks stay held and intact
    assert kv.block_ids("b") == [0, 1, 3] and kv.pool.blocks[0].ref_count == 1
    assert kv.pool.free_block_ids() == [4, 5, 6, 7, 2]
    kv.check_integrity()
    kv.free("b")  # tail first: 3, then the cached 1, 0
    assert kv.pool.free_block_ids() == [4, 5, 6, 7, 2, 3, 1, 0]
    assert kv.num_free_blocks == 8 and kv.num_cached_free_blocks == 2
    kv.check_integrity()


def test_a_whole_block_prompt_leaves_its_last_block_to_compute() -> None:
    kv = KVCacheManager(num_blocks=8, block_size=4)
    prompt = list(range(100, 108))
    _run(kv, "a", prompt)
    kv.free("a")
    assert _run(kv, "b", prompt) == 4  # not 8: the last token's logits are needed
    assert kv.block_ids("b") == [0, 2]


def test_lru_eviction_takes_the_least_recently_freed_tails_first() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    a, b = [10, 11, 12, 13, 14], [20, 21, 22, 23, 24]
    _run(kv, "a", a[:4])  # blocks 0, 1
    _run(kv, "b", b[:4])  # blocks 2, 3
    kv.free("a")
    kv.free("b")
    assert kv.pool.free_block_ids() == [1, 0, 3, 2] and kv.num_cached_free_blocks == 4
    assert kv.allocate_slots("c", 2)  # takes block 1: a's tail, evicted
    assert kv.block_ids("c") == [1] and kv.num_cached_free_blocks == 3
    assert _run(kv, "a2", a) == 2  # a's head (block 0) is still cached
    assert kv.block_ids("a2") == [0, 3, 2]  # b's tail then head evicted for the rest
    assert kv.num_cached_free_blocks == 0
    kv.free("a2")  # a hit revives a block; freeing again puts it at the back
    assert kv.pool.free_block_ids() == [2, 3, 0]


def test_reviving_cached_free_blocks_counts_against_free_space() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    _run(kv, "a", [10, 11, 12, 13])  # blocks 0, 1 cached
    kv.free("a")
    assert kv.allocate_slots("x", 4)  # blocks 2, 3
    # b hits 0 and 1 (both free) and needs one more block: 3 of the 2 free ones.
    assert _run(kv, "b", [10, 11, 12, 13, 14], prefix_ok=False) == 4
    assert not kv.holds("b") and kv.num_cached_free_blocks == 2  # nothing changed
    kv.free("x")
    assert _run(kv, "b", [10, 11, 12, 13, 14]) == 4
    assert kv.block_ids("b") == [0, 1, 3]


def test_one_block_per_hash_when_two_requests_compute_the_same_prefix() -> None:
    kv = KVCacheManager(num_blocks=6, block_size=2)
    tokens = [10, 11, 12, 13, 14]
    for rid in ("a", "b"):  # both admitted before either has computed anything
        assert kv.allocate_slots(rid, len(tokens))
    for rid in ("a", "b"):
        kv.cache_full_blocks(rid, _hashes(tokens, 2), len(tokens))
    assert [kv.pool.blocks[i].block_hash is not None for i in range(6)] == [
        True, True, False, False, False, False,
    ]  # fmt: skip
    kv.check_integrity()
    kv.free("a")
    kv.free("b")
    assert _run(kv, "c", tokens) == 4 and kv.block_ids("c")[:2] == [0, 1]


def test_prefix_caching_off_never_hashes() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2, enable_prefix_caching=False)
    _run(kv, "a", [10, 11, 12, 13])
    kv.free("a")
    assert _run(kv, "b", [10, 11, 12, 13]) == 0 and kv.num_cached_free_blocks == 0


def test_integrity_check_catches_hash_corruption() -> None:
    kv = KVCacheManager(num_blocks=4, block_size=2)
    _run(kv, "a", [10, 11, 12, 13])
    kv.pool.blocks[2].block_hash = b"stray"  # a hash the map does not know
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
