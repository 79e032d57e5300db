"""The CPU paged decode kernel (cpu_paged backend) against dense attention, inside the engine
against transformers, its fallback when it cannot build, and building once per process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from engine_helpers import VOCAB, hf_greedy, make_engine, prompts, run_all, tokens
from structlog.testing import capture_logs

from engine import SamplingParams, native
from engine.attention import _warn_fallback as warn_fallback
from engine.attention import cpu_kernels, create_backend, default_backend
from engine.attention.base import AttentionMetadata
from engine.attention.cpu_kernels import KernelBuildError
from engine.models import cpu_ops

CPU = torch.device("cpu")
NO_EOS = VOCAB + 7  # an id no model here emits: HF runs the full length, like ignore_eos


def _decode_batch(lens: list[int], block_size: int, heads: int, kv_heads: int, dim: int):
    """Caches full of random values (unused slots too), each sequence's blocks scattered,
    the decode rows permuted; the new token's K/V arrive through the slot mapping."""
    g = torch.Generator().manual_seed(len(lens) * 1000 + block_size + heads + dim)
    counts = [-(-n // block_size) for n in lens]
    num_blocks = sum(counts) + 3
    free = torch.randperm(num_blocks, generator=g).tolist()
    width = max(counts)
    tables = torch.zeros(len(lens), width, dtype=torch.int64)
    for i, count in enumerate(counts):
        tables[i, :count] = torch.tensor([free.pop() for _ in range(count)])
    shape = (num_blocks, block_size, kv_heads, dim)
    cache = (torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    rows = torch.randperm(len(lens), generator=g)  # decode i sits at row rows[i]
    query = torch.randn(len(lens), heads, dim, generator=g)
    key, value = (torch.randn(len(lens), kv_heads, dim, generator=g) for _ in range(2))
    lens_t = torch.tensor(lens)
    last = lens_t - 1
    slots = tables[torch.arange(len(lens)), last // block_size] * block_size + last % block_size
    order = torch.argsort(rows)  # row r holds decode order[r]
    metadata = AttentionMetadata(
        num_tokens=len(lens),
        block_size=block_size,
        slot_mapping=slots[order],
        query_start_loc=torch.arange(len(lens) + 1, dtype=torch.int32),
        context_lens=lens_t[order].int(),
        block_tables=tables[order],
        decode_token_indices=rows,
        decode_block_tables=tables,
        decode_context_lens=lens_t,
        max_decode_context_len=max(lens),
        prefills=[],
    )
    return query, key[order], value[order], cache, metadata


def _dense_decode(query, cache, metadata, scale, window):
    """float64 reference: each decode's query over its context gathered token by token."""
    k_cache, v_cache = (c.double().flatten(0, 1) for c in cache)
    group = query.shape[1] // k_cache.shape[1]
    out = torch.empty(query.shape, dtype=torch.float64)
    for i, row in enumerate(metadata.decode_token_indices.tolist()):
        ctx = int(metadata.decode_context_lens[i])
        lo = 0 if window is None else max(0, ctx - window)
        pos = torch.arange(lo, ctx)
        table = metadata.decode_block_tables[i]
        slots = table[pos // metadata.block_size] * metadata.block_size + pos % metadata.block_size
        k = k_cache[slots].repeat_interleave(group, dim=1)  # [L, H, Dh]
        v = v_cache[slots].repeat_interleave(group, dim=1)
        scores = torch.einsum("hd,lhd->hl", query[row].double(), k) * scale
        out[row] = torch.einsum("hl,lhd->hd", scores.softmax(-1), v)
    return out


@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim"), [(4, 4, 8), (6, 2, 16), (12, 4, 64), (8, 2, 128)]
)  # GQA 1, 3, 3, 4
@pytest.mark.parametrize("block_size", [16, 5, 64])  # 64: several kernel chunks per block
@pytest.mark.parametrize("window", [None, 7, 100])
def test_kernel_matches_dense(heads, kv_heads, dim, block_size, window) -> None:
    bs = block_size
    lens = [1, bs - 1, bs, bs + 1, 2 * bs + 3, 300, 37, 513]
    query, key, value, cache, metadata = _decode_batch(lens, bs, heads, kv_heads, dim)
    scale = dim**-0.5
    out = create_backend("cpu_paged").forward(
        query, key, value, cache, metadata, scale=scale, sliding_window=window
    )
    expected = _dense_decode(query, cache, metadata, scale, window).float()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sharpness", [8.0, 60.0])
def test_kernel_matches_dense_on_peaked_scores(sharpness) -> None:
    """Scores hundreds apart: most weights underflow (the vector exp's e^x = 0 below -87)
    and the online softmax's running max jumps between chunks."""
    lens = [3, 16, 17, 300, 513]
    query, key, value, cache, metadata = _decode_batch(lens, 16, 12, 4, 64)
    scale = sharpness * 64**-0.5
    out = create_backend("cpu_paged").forward(query, key, value, cache, metadata, scale=scale)
    expected = _dense_decode(query, cache, metadata, scale, None).float()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_unsupported_shapes_take_the_sdpa_path() -> None:
    """head_dim 12 (not a multiple of 8) and bfloat16 run, through SDPA, still correct."""
    backend = create_backend("cpu_paged")
    for dim, dtype in ((12, torch.float32), (16, torch.bfloat16)):
        batch = _decode_batch([3, 20, 9], 4, 4, 2, dim)
        query, key, value, cache = (
            *(t.to(dtype) for t in batch[:3]),
            tuple(c.to(dtype) for c in batch[3]),
        )
        out = backend.forward(query, key, value, cache, batch[4], scale=0.3)
        expected = _dense_decode(query, cache, batch[4], 0.3, None)  # cache: written now
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out.double(), expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_engine_greedy_tokens_match_transformers(tiny_models, kind: str) -> None:
    """Block size 5, prompts up to 70 tokens: decodes cross blocks and kernel chunks, the
    Mistral window (8) slides; every request alone in HF gives the same tokens."""
    model = tiny_models[kind]
    engine = make_engine(model, block_size=5, max_num_batched_tokens=64)
    assert engine.runner.backend.name == "cpu_paged"
    batch = prompts(6, seed=21, min_len=2, max_len=70)
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    for i, prompt in enumerate(batch):
        engine.add_request(str(i), prompt, params)
    results = run_all(engine)
    for i, prompt in enumerate(batch):
        assert tokens(results[str(i)]) == hf_greedy(model, prompt, 20, eos_token_id=NO_EOS), i


@pytest.fixture
def fresh_build(tmp_path, monkeypatch):
    """An empty kernel cache and no memory of an earlier build (the attention kernel's, the
    element-wise ops') or warning, restored after."""
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    forget = (native._build_and_load, warn_fallback, cpu_ops._library)
    for cache in forget:
        cache.cache_clear()
    yield tmp_path
    for cache in forget:  # later tests build (or load) the real libraries again
        cache.cache_clear()


def test_without_a_compiler_the_engine_falls_back_to_sdpa(fresh_build, monkeypatch, llama):
    monkeypatch.setenv(native.CC_ENV, str(fresh_build / "no-such-cc"))
    with capture_logs() as logs:
        assert default_backend(CPU) == "torch_sdpa"
        engine = make_engine(llama)
    warnings = [e for e in logs if e["log_level"] == "warning" and e.get("backend")]
    assert len(warnings) == 1 and "not found" in warnings[0]["reason"]
    assert engine.runner.backend.name == "torch_sdpa"
    with pytest.raises(KernelBuildError):
        create_backend("cpu_paged")
    engine.add_request("a", [5, 6, 7], SamplingParams(temperature=0, max_tokens=4))
    assert len(tokens(run_all(engine)["a"])) == 4


def test_a_failing_build_falls_back(fresh_build, monkeypatch) -> None:
    broken = fresh_build / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(cpu_kernels, "SOURCE", broken)
    with capture_logs() as logs:
        assert default_backend(CPU) == "torch_sdpa"
    assert "not C" in logs[0]["reason"]  # the compiler's message, for whoever reads the log


def test_the_kernel_builds_once_per_process(fresh_build, monkeypatch) -> None:
    compiles = []
    real_compile = native._compile

    def counting_compile(*args):
        compiles.append(threading.get_ident())
        real_compile(*args)

    monkeypatch.setattr(native, "_compile", counting_compile)
    with ThreadPoolExecutor(8) as pool:
        libs = list(pool.map(lambda _: cpu_kernels.load_kernels(), range(8)))
    assert len(compiles) == 1 and all(lib is libs[0] for lib in libs)
    assert len(list(fresh_build.glob("*.so"))) == 1  # and nothing half-written left
    native._build_and_load.cache_clear()  # a new process: loads the cached library
    cpu_kernels.load_kernels()
    assert len(compiles) == 1


def test_loading_the_kernels_keeps_ieee_subnormals() -> None:
    """The library must not flip the process into flush-to-zero (crtfastmath.o)."""
    cpu_kernels.load_kernels()
    smallest_normal = 2.2250738585072014e-308
    assert smallest_normal / 2 != 0.0
    assert torch.tensor([1e-40]).item() != 0.0  # a float32 subnormal survives
