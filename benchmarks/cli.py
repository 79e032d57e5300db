"""`protoserve bench throughput | serve`: the flags. argparse only at import (no torch):
`service.cli` hands `bench ...` over to main() here, and each command imports its
machinery when it runs."""

from __future__ import annotations

import argparse

from service.cli.flags import parse_size

DEFAULT_HF_BATCH_SIZES = (8, 16, 32, 64)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="protoserve bench",
        description="Benchmarks with Hugging Face transformers baselines (benchmarks/README.md).",
    )
    commands = parser.add_subparsers(dest="bench_command", required=True)
    _throughput_flags(commands.add_parser("throughput", help="Offline, through the engine API."))
    _serve_flags(commands.add_parser("serve", help="Online, against running servers."))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from service.cli import logs

    logs.configure("console", args.log_level)
    if args.bench_command == "throughput":
        from benchmarks import throughput

        return throughput.run(args)
    from benchmarks import serve

    return serve.run(args)


def _common_flags(p: argparse.ArgumentParser, model_help: str) -> None:
    p.add_argument("--model", default="small", help=model_help)
    p.add_argument(
        "--model-root", help="Where benchmark models are built (default benchmarks/.models)."
    )
    p.add_argument("--min-prompt-len", type=int, default=64)
    p.add_argument("--max-prompt-len", type=int, default=512, help="Inclusive.")
    p.add_argument("--output-len", type=int, default=128, help="Exact (EOS ignored).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--runs", type=int, default=3, help="Repeats of each measurement (fresh prompts)."
    )
    p.add_argument("--out-dir", help="Default benchmarks/results/<timestamp>-<command>/.")
    p.add_argument("--no-plot", action="store_true", help="Skip the PNG.")
    p.add_argument("--log-level", default="warning", help="protoserve's own log level.")
    p.add_argument("--device", default="cpu", help="cpu | cuda: every measured system.")
    p.add_argument(
        "--threads", type=int, default=None,
        help="torch threads of every measured process (servers: OMP_NUM_THREADS); default: "
        "usable cores. On a shared, oversubscribed CPU fewer threads can be much faster.",
    )  # fmt: skip
    p.add_argument("--max-model-len", type=parse_size, default=None)
    p.add_argument("--max-num-seqs", type=int, default=None)
    p.add_argument("--max-num-batched-tokens", type=int, default=None)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--kv-cache-memory", type=parse_size, default=None, help="e.g. 2g")


def _throughput_flags(p: argparse.ArgumentParser) -> None:
    _common_flags(p, "tiny | small (built locally if missing) | a model directory.")
    p.add_argument("--num-requests", type=int, default=64)
    p.add_argument(
        "--prefix-caching", action=argparse.BooleanOptionalAction, default=None,
        help="Engine prefix caching (default: the engine's default).",
    )  # fmt: skip
    hf = p.add_argument_group("transformers baselines")
    hf.add_argument("--no-hf", action="store_true", help="Skip every transformers baseline.")
    hf.add_argument("--hf-attn", default="sdpa", help="attn_implementation for generate.")
    hf.add_argument("--hf-batch-sizes", type=int, nargs="*", default=list(DEFAULT_HF_BATCH_SIZES))
    hf.add_argument(
        "--hf-cb-attn", nargs="*", default=["sdpa"],
        help="Attention implementations for continuous batching: sdpa, 'paged|eager' (none: skip).",
    )  # fmt: skip
    hf.add_argument(
        "--hf-sequential-requests", type=int, default=None,
        help="Run the one-at-a-time baseline on the first N requests only (default: all).",
    )  # fmt: skip
    micro = p.add_argument_group("decode step and prefix cache")
    micro.add_argument("--decode-batch", type=int, default=32)
    micro.add_argument("--decode-steps", type=int, default=16, help="Timed steps per run.")
    micro.add_argument("--decode-warmup", type=int, default=3)
    micro.add_argument("--prefix-len", type=int, default=1024)
    micro.add_argument("--prefix-suffix-len", type=int, default=16)


def _serve_flags(p: argparse.ArgumentParser) -> None:
    _common_flags(p, "tiny | small | a model directory: launch the servers on it.")
    p.add_argument("--num-prompts", type=int, default=64)
    p.add_argument(
        "--request-rate", type=float, default=float("inf"),
        help="Requests per second, Poisson arrivals; inf: all at once.",
    )  # fmt: skip
    p.add_argument("--max-concurrency", type=int, default=32, help="0: unlimited.")
    p.add_argument(
        "--backends", nargs="+", default=["openai", "grpc"], choices=("openai", "grpc"),
        help="openai: streaming /v1/completions through the REST bridge; grpc: GenerateStream.",
    )  # fmt: skip
    p.add_argument(
        "--prompt-format", default="text", choices=("text", "ids"),
        help="text: prompts of single-token words (what transformers serve can take); ids.",
    )  # fmt: skip
    remote = p.add_argument_group("an already running server (no launch)")
    remote.add_argument("--base-url", help="REST bridge, e.g. http://127.0.0.1:8000")
    remote.add_argument("--grpc-target", help="gRPC service, e.g. 127.0.0.1:50051")
    remote.add_argument("--served-model-name", default=None)
    base = p.add_argument_group("baselines")
    base.add_argument(
        "--transformers", nargs="*", default=["cb"], choices=("cb", "generate"),
        help="`transformers serve` modes: cb (--continuous-batching), generate (none: skip).",
    )  # fmt: skip
    base.add_argument("--transformers-attn", default="sdpa")
    base.add_argument(
        "--offline-reference", action=argparse.BooleanOptionalAction, default=True,
        help="Also run the engine offline (same requests, max_num_seqs = max concurrency).",
    )  # fmt: skip
    p.add_argument("--startup-timeout", type=float, default=600.0)
