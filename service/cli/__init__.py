"""The `protoserve` command: serve, grpc, bridge, demo-model.

Importing this package is cheap (no torch): `protoserve bridge` must stay torch-free,
so each command imports what it needs when it runs."""

from __future__ import annotations

import argparse

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    if command == "demo-model":
        return _demo_model(args["dir"], args["seed"], args["force"])
    values = flags.resolve(command, args)
    logs.configure(values["log_format"], values["log_level"])
    from service.cli import launch

    runner = {"serve": launch.run_serve, "grpc": launch.run_grpc, "bridge": launch.run_bridge}
    return runner[command](values)


def _demo_model(directory: str, seed: int, force: bool) -> int:
    from pathlib import Path

    if (Path(directory) / "config.json").is_file() and not force:
        print(f"{directory}: a model is already there (use --force to rebuild)")
        return 0
    from service.demo_model import build_demo_model

    print(f"built the demo model in {build_demo_model(directory, seed=seed)}")
    return 0
