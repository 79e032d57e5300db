"""The `protoserve` command: serve, grpc, bridge, demo-model, bench.

Importing this package is cheap (no torch): `protoserve bridge` must stay torch-free,
so each command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys

from service.cli import flags, logs

DESCRIPTION = "gRPC-first LLM inference: a gRPC service and an OpenAI-compatible REST bridge."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protoserve", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Run the gRPC service and the REST bridge.")
    serve.add_argument(
        "model",
        nargs="*",
        default=argparse.SUPPRESS,
        help="Model directories (Hugging Face layout); default $MODEL_NAME.",
    )
    flags.add_flags(serve, flags.SERVE)
    grpc = commands.add_parser("grpc", help="Run the gRPC service alone.")
    grpc.add_argument("model", nargs="*", default=argparse.SUPPRESS)
    flags.add_flags(grpc, flags.GRPC)
    bridge = commands.add_parser("bridge", help="Run the REST bridge alone.")
    flags.add_flags(bridge, flags.BRIDGE)
    demo = commands.add_parser("demo-model", help="Build the embedded demo model into DIR.")
    demo.add_argument("dir")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="Rebuild even if DIR has a model.")
    demo.add_argument(
        "--kind",
        choices=tuple(DEMO_BUILDERS),
        default="chat",
        help="chat: a tiny Llama with a chat template; whisper: a tiny speech-to-text model.",
    )
    bench = commands.add_parser(
        "bench",
        help="Benchmarks: `bench throughput` (offline), `bench serve` (online).",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser, imported only now (benchmarks/cli.py)
        from benchmarks.cli import main as bench_main

        return bench_main(argv[1:])
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    if command == "demo-model":
        return _demo_model(args["dir"], args["seed"], args["force"], args["kind"])
    values = flags.resolve(command, args)
    logs.configure(values["log_format"], values["log_level"])
    from service.cli import launch

    runner = {"serve": launch.run_serve, "grpc": launch.run_grpc, "bridge": launch.run_bridge}
    return runner[command](values)


# --kind -> "module:builder" (imported only when used: they need torch).
DEMO_BUILDERS = {
    "chat": "service.demo_model:build_demo_model",
    "whisper": "service.demo_whisper:build_whisper_model",
}


def _demo_model(directory: str, seed: int, force: bool, kind: str = "chat") -> int:
    import importlib
    from pathlib import Path

    if (Path(directory) / "config.json").is_file() and not force:
        print(f"{directory}: a model is already there (use --force to rebuild)")
        return 0
    module, builder = DEMO_BUILDERS[kind].split(":")
    build = getattr(importlib.import_module(module), builder)
    print(f"built the {kind} demo model in {build(directory, seed=seed)}")
    return 0
