"""KV cache mechanism: a pool of fixed-size blocks, per-request block tables, and the
paged K/V tensors. Policy (who runs, who is preempted) lives in the scheduler.

Blocks carry reference counts so that prefix caching can share a full block between
requests: a later change hashes full blocks (token content + parent hash), keeps freed
cached blocks in the free queue as LRU eviction candidates, and lets `allocate_slots`
start from blocks found by hash. Today every block has one owner."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(eq=False)
class Block:
    block_id: int
    ref_count: int = 0


class BlockPool:
    """Every block of the cache; a free queue in allocation order (front first)."""

    def __init__(self, num_blocks: int) -> None:
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: deque[Block] = deque(self.blocks)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def allocate(self, count: int) -> list[Block]:
        assert count <= len(self._free), "caller must check num_free_blocks first"
        taken = [self._free.popleft() for _ in range(count)]
        for block in taken:
            assert block.ref_count == 0
            block.ref_count = 1
        return taken

    def release(self, blocks: Iterable[Block]) -> None:
        """Drop one reference from each block; a block with none left becomes free."""
        for block in blocks:
            assert block.ref_count > 0, f"block {block.block_id} released twice"
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free.append(block)

    def free_block_ids(self) -> list[int]:
        return [b.block_id for b in self._free]


class KVCacheManager:
    """Per-request block tables over a BlockPool; allocate-as-you-grow."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.pool = BlockPool(num_blocks)
        self._tables: dict[str, list[Block]] = {}

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    @property
    def num_free_blocks(self) -> int:
        return self.pool.num_free_blocks

    def blocks_needed(self, request_id: str, num_tokens: int) -> int:
        """New blocks to hold `num_tokens` tokens in total for this request."""
        have = len(self._tables.get(request_id, ()))
        return max(0, -(-num_tokens // self.block_size) - have)

    def can_allocate(self, request_id: str, num_tokens: int) -> bool:
        return self.blocks_needed(request_id, num_tokens) <= self.pool.num_free_blocks

    def allocate_slots(self, request_id: str, num_tokens: int) -> bool:
        """Grow the request's table to hold `num_tokens` tokens; False (and no change)
        when the pool has too few free blocks."""
        needed = self.blocks_needed(request_id, num_tokens)
        if needed > self.pool.num_free_blocks:
            return False
        table = self._tables.setdefault(request_id, [])
        table.extend(self.pool.allocate(needed))
        return True

    def block_ids(self, request_id: str) -> list[int]:
        return [b.block_id for b in self._tables.get(request_id, ())]

    def free(self, request_id: str) -> None:
        """Release all of the request's blocks (finish, abort, preemption). Idempotent.
        Released tail-first so a later LRU evicts a sequence's last blocks first."""
        table = self._tables.pop(request_id, [])
        self.pool.release(reversed(table))

    def check_integrity(self) -> None:
        """Every block is either free (ref 0, once in the free queue) or owned, and its
        ref count equals the number of tables holding it."""
        owners: dict[int, int] = {}
        for table in self._tables.values():
            for block in table:
                owners[block.block_id] = owners.get(block.block_id, 0) + 1
        free_ids = self.pool.free_block_ids()
        assert len(free_ids) == len(set(free_ids)), "a block is twice in the free queue"
        for block in self.pool.blocks:
            refs = owners.get(block.block_id, 0)
            assert block.ref_count == refs, (
                f"block {block.block_id}: ref {block.ref_count} != {refs}"
            )
            assert refs == 1 or refs == 0, f"block {block.block_id} is owned {refs} times"
        assert set(free_ids) == {b.block_id for b in self.pool.blocks if b.ref_count == 0}
        assert len(free_ids) + len(owners) == self.pool.num_blocks


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
