"""Content addresses of full KV blocks, for prefix caching.

A block's hash covers its tokens and its parent's hash, so equal hashes mean equal
prefixes, not only equal blocks. The chain starts from a root derived from the request's
extra keys (today the optional `cache_salt`): requests with different salts share no
block. SHA-256, so a collision (another request's K/V served as yours) is not a practical
concern."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

BlockHash = bytes

_ROOT_TAG = b"protoserve/kv-block/v1"


def root_hash(cache_salt: str | None) -> BlockHash:
    """The parent of a request's first block: the extra keys that isolate it."""
    salt = b"\x00" if cache_salt is None else b"\x01" + cache_salt.encode()
    return hashlib.sha256(_ROOT_TAG + salt).digest()


def hash_block(parent: BlockHash, token_ids: Sequence[int]) -> BlockHash:
    return hashlib.sha256(parent + array("q", token_ids).tobytes()).digest()


def extend_block_hashes(
    hashes: list[BlockHash], token_ids: Sequence[int], block_size: int, cache_salt: str | None
) -> None:
    """Append the hashes of the full blocks in `token_ids`, the tokens that follow the
    `len(hashes)` blocks already hashed. A trailing partial block is left for later."""
    parent = hashes[-1] if hashes else root_hash(cache_salt)
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        parent = hash_block(parent, token_ids[start : start + block_size])
        hashes.append(parent)
