"""Every KV block of the cache: reference counts, content hashes, the free queue.

A block is free when no block table holds it (ref count 0). A free block may still be
cached: it keeps its hash and its K/V until it is taken for new tokens. The free queue
is the eviction order: blocks are taken from the front (least recently freed first, the
never-used blocks in id order before them), and a cached block loses its hash when taken.
A cache hit on a free block takes it out of the queue without touching its contents."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from engine.block_hash import BlockHash


@dataclass(eq=False)
class Block:
    block_id: int
    ref_count: int = 0  # block tables holding it
    # Hash of its tokens (and their prefix) once it is full of computed K/V; None = not
    # in the prefix cache (never full, a duplicate of a cached block, or evicted).
    block_hash: BlockHash | None = None


class BlockPool:
    def __init__(self, num_blocks: int) -> None:
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, Block] = OrderedDict((b.block_id, b) for b in self.blocks)
        self._cached: dict[BlockHash, Block] = {}
        self._num_cached_free = 0  # free blocks that hold a hash (eviction candidates)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        """Blocks no table holds, cached ones included (they can be taken at any time)."""
        return len(self._free)

    @property
    def num_cached_free_blocks(self) -> int:
        return self._num_cached_free

    def lookup(self, block_hash: BlockHash) -> Block | None:
        return self._cached.get(block_hash)

    def allocate(self, count: int) -> list[Block]:
        """Take `count` blocks from the front of the free queue, evicting cached ones."""
        assert count <= len(self._free), "caller must check num_free_blocks first"
        taken = []
        for _ in range(count):
            _, block = self._free.popitem(last=False)
            if block.block_hash is not None:
                self._evict(block)
            block.ref_count = 1
            taken.append(block)
        return taken

    def touch(self, blocks: Iterable[Block]) -> None:
        """One more reference to each of these cached blocks (a prefix cache hit)."""
        for block in blocks:
            assert block.block_hash is not None, "only cached blocks are shared"
            if block.ref_count == 0:
                del self._free[block.block_id]
                self._num_cached_free -= 1
            block.ref_count += 1

    def share(self, blocks: Iterable[Block]) -> None:
        """One more reference to each of these held blocks (a beam fork)."""
        for block in blocks:
            assert block.ref_count > 0, f"block {block.block_id} is free: nothing to share"
            block.ref_count += 1

    def release(self, blocks: Iterable[Block]) -> None:
        """Drop one reference from each block; one with none left joins the back of the
        free queue, keeping its hash."""
        for block in blocks:
            assert block.ref_count > 0, f"block {block.block_id} released twice"
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block.block_id] = block
                self._num_cached_free += block.block_hash is not None

    def cache(self, block: Block, block_hash: BlockHash) -> None:
        """Give a held block, now full of computed K/V, its hash. When another block holds
        that hash already (two requests computed the same prefix), this one stays
        uncached: one block per hash."""
        assert block.ref_count > 0 and block.block_hash is None
        if block_hash not in self._cached:
            block.block_hash = block_hash
            self._cached[block_hash] = block

    def _evict(self, block: Block) -> None:
        del self._cached[block.block_hash]
        block.block_hash = None
        self._num_cached_free -= 1

    def free_block_ids(self) -> list[int]:
        """The free queue, front (next taken) first."""
        return list(self._free)

    def check_integrity(self) -> None:
        """Free queue = the blocks with ref 0, each once; the hash map and the blocks'
        hashes agree; the cached-free count is right. (Ref counts vs tables: the caller.)"""
        free = [b.block_id for b in self._free.values()]
        assert free == list(self._free), "free queue keyed by the wrong block id"
        assert set(free) == {b.block_id for b in self.blocks if b.ref_count == 0}
        assert all(b.ref_count >= 0 for b in self.blocks)
        for block_hash, block in self._cached.items():
            assert block.block_hash == block_hash, f"block {block.block_id}: stale hash entry"
        hashed = [b for b in self.blocks if b.block_hash is not None]
        assert len(hashed) == len(self._cached), "a hashed block is missing from the map"
        cached_free = sum(1 for b in self._free.values() if b.block_hash is not None)
        assert cached_free == self._num_cached_free, "cached-free count drifted"
