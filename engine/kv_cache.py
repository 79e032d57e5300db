"""KV cache mechanism: per-request block tables over a BlockPool, prefix cache lookups,
and the paged K/V tensors. Policy (who runs, who is preempted) lives in the scheduler.

Prefix caching: once a block is full of computed K/V, the scheduler offers it with its
hash (`cache_full_blocks`). On admission the scheduler asks for the longest cached prefix
of a request's full blocks (`find_cached_prefix`) and hands the answer, an opaque
CachedPrefix, straight back to `allocate_slots`, which shares those blocks (reference
counts) and allocates the rest. Freed blocks keep their hashes until evicted.

Beam search forks a table (`fork`): the child shares every block by reference count. Full
blocks are never written again; a sequence about to write into a shared partial block
gets its own copy first (copy-on-write in `allocate_slots`, given where the write starts):
the (source, destination) pairs wait in `pending_copies` for the runner."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.block_hash import BlockHash
from engine.block_pool import Block, BlockPool


@dataclass(frozen=True)
class CachedPrefix:
    """A lookup's answer. Valid until the pool next allocates: pass it to allocate_slots
    at once. The scheduler reads only `num_tokens`."""

    blocks: tuple[Block, ...]
    block_hashes: tuple[BlockHash, ...]  # what each block held when found
    num_tokens: int  # tokens those blocks hold (a multiple of block_size)


NO_PREFIX = CachedPrefix((), (), 0)


@dataclass(eq=False)
class _Table:
    blocks: list[Block]
    num_hashed: int = 0  # leading full blocks already offered to the prefix cache


class KVCacheManager:
    """Per-request block tables; allocate-as-you-grow; full blocks shared by hash."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.pool = BlockPool(num_blocks)
        self._tables: dict[str, _Table] = {}
        # Copy-on-write copies decided since the scheduler last took them.
        self.pending_copies: list[tuple[int, int]] = []

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    @property
    def num_free_blocks(self) -> int:
        """Blocks no request holds, including cached ones (evictable at any time)."""
        return self.pool.num_free_blocks

    @property
    def num_cached_free_blocks(self) -> int:
        return self.pool.num_cached_free_blocks

    def find_cached_prefix(
        self, block_hashes: Sequence[BlockHash], max_tokens: int
    ) -> CachedPrefix:
        """The longest run of cached blocks matching `block_hashes` from the start,
        holding at most `max_tokens` tokens."""
        if not self.enable_prefix_caching:
            return NO_PREFIX
        blocks: list[Block] = []
        for block_hash in block_hashes[: max_tokens // self.block_size]:
            block = self.pool.lookup(block_hash)
            if block is None:
                break
            blocks.append(block)
        hashes = tuple(block_hashes[: len(blocks)])
        return CachedPrefix(tuple(blocks), hashes, len(blocks) * self.block_size)

    def allocate_slots(
        self,
        request_id: str,
        num_tokens: int,
        prefix: CachedPrefix = NO_PREFIX,
        write_from: int | None = None,
    ) -> bool:
        """Grow the request's table to hold `num_tokens` tokens in total, starting a new
        table from `prefix`; False (and no change) when too few blocks are free.
        `write_from`: the first position about to be written; when its block is shared
        (a fork), the request gets its own copy of it."""
        table = self._tables.get(request_id)
        assert table is None or not prefix.blocks, "a cached prefix only starts a table"
        for block, block_hash in zip(prefix.blocks, prefix.block_hashes, strict=True):
            assert block.block_hash == block_hash, "stale CachedPrefix: allocated since lookup"
        have = len(table.blocks) if table is not None else len(prefix.blocks)
        needed = max(0, -(-num_tokens // self.block_size) - have)
        revived = sum(1 for b in prefix.blocks if b.ref_count == 0)  # leave the free queue
        shared = self._shared_block_index(table, write_from)
        if needed + revived + (shared is not None) > self.pool.num_free_blocks:
            return False
        if table is None:
            table = self._tables[request_id] = _Table(list(prefix.blocks), len(prefix.blocks))
            self.pool.touch(prefix.blocks)
        if shared is not None:
            self._copy_on_write(table, shared)
        table.blocks.extend(self.pool.allocate(needed))
        return True

    def fork(self, parent_id: str, child_id: str) -> None:
        """The child's table: the parent's blocks, shared (reference counts)."""
        parent = self._tables[parent_id]
        assert child_id not in self._tables
        self._tables[child_id] = _Table(list(parent.blocks), parent.num_hashed)
        self.pool.share(parent.blocks)

    def _shared_block_index(self, table: _Table | None, write_from: int | None) -> int | None:
        """Index of the table's block that `write_from` falls in, if others hold it too."""
        if table is None or write_from is None:
            return None
        index = write_from // self.block_size
        if index < len(table.blocks) and table.blocks[index].ref_count > 1:
            return index
        return None

    def _copy_on_write(self, table: _Table, index: int) -> None:
        shared = table.blocks[index]
        assert shared.block_hash is None, "full (cached) blocks are never written"
        [own] = self.pool.allocate(1)
        self.pool.release([shared])
        table.blocks[index] = own
        self.pending_copies.append((shared.block_id, own.block_id))

    def take_copies(self) -> list[tuple[int, int]]:
        copies, self.pending_copies = self.pending_copies, []
        return copies

    def cache_full_blocks(
        self, request_id: str, block_hashes: Sequence[BlockHash], num_computed_tokens: int
    ) -> None:
        """Offer the request's blocks that are full of computed K/V to the prefix cache;
        `block_hashes` are the request's full-block hashes (at least that many)."""
        if not self.enable_prefix_caching:
            return
        table = self._tables[request_id]
        num_full = num_computed_tokens // self.block_size
        assert num_full <= len(block_hashes), "hash the request's tokens first"
        for index in range(table.num_hashed, num_full):
            self.pool.cache(table.blocks[index], block_hashes[index])
        table.num_hashed = max(table.num_hashed, num_full)

    def block_ids(self, request_id: str) -> list[int]:
        table = self._tables.get(request_id)
        return [b.block_id for b in table.blocks] if table is not None else []

    def holds(self, request_id: str) -> bool:
        return request_id in self._tables

    def request_ids(self) -> list[str]:
        """Requests holding a block table."""
        return list(self._tables)

    def free(self, request_id: str) -> None:
        """Release all of the request's blocks (finish, abort, preemption). Idempotent.
        Released tail-first, so eviction takes a sequence's last blocks first."""
        table = self._tables.pop(request_id, None)
        if table is not None:
            self.pool.release(reversed(table.blocks))

    def check_integrity(self) -> None:
        """Every block is free (ref 0, once in the free queue) or held, its ref count
        equal to the number of tables holding it; hashes only on offered blocks."""
        holders = Counter(b.block_id for t in self._tables.values() for b in t.blocks)
        for block in self.pool.blocks:
            refs = holders.get(block.block_id, 0)
            assert block.ref_count == refs, (
                f"block {block.block_id}: ref {block.ref_count} != {refs}"
            )
        for request_id, table in self._tables.items():
            ids = [b.block_id for b in table.blocks]
            assert len(ids) == len(set(ids)), f"{request_id} holds a block twice"
            assert table.num_hashed <= len(ids)
            unoffered = table.blocks[table.num_hashed :]
            assert all(b.block_hash is None for b in unoffered), f"{request_id}: early hash"
        self.pool.check_integrity()


def bytes_per_block(
    num_layers: int, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype
) -> int:
    """K and V of every layer for one block."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * num_layers * block_size * num_kv_heads * head_dim * element


def allocate_kv_tensors(
    num_layers: int,
    num_blocks: int,
    block_size: int,
    num_kv_heads: int,
    head_dim: int,
    dtype: torch.dtype,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (k_cache, v_cache), each [num_blocks, block_size, num_kv_heads, head_dim].
    Zero-filled: unwritten slots must not hold NaN, which a masked softmax would spread."""
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    return [
        (
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )
        for _ in range(num_layers)
    ]
