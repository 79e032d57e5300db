"""Generate the Python code of the protobuf contract (run by `make proto`).

The generated modules live next to their .proto files, so `proto/protoserve` is the
importable `protoserve` package. `tests/proto/test_generated_fresh.py` regenerates into
a temporary directory and fails when the committed code differs.

Usage: python proto/build.py [OUT_DIR]              (default: proto/)
       python proto/build.py --descriptor-set FILE  (a FileDescriptorSet with imports and
                                                     source info: buf lint, Envoy)

`make proto` also writes envoy/protoserve.binpb, the descriptor set Envoy's gRPC-JSON
transcoder loads. It is built on demand, not committed (see envoy/README.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "protoserve"
# Not imported by the contract, but in the descriptor set so Envoy's convert_grpc_status
# can render the google.rpc details the service sends (BadRequest, ErrorInfo, ...).
STATUS_PROTOS = ["google/rpc/status.proto", "google/rpc/error_details.proto"]


def proto_files() -> list[str]:
    """Every .proto of the contract, relative to PROTO_ROOT, in a stable order."""
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).rglob("*.proto"))


def include_dirs() -> list[str]:
    """googleapis-common-protos and grpc_tools ship the .proto sources we import."""
    import google.api.annotations_pb2 as annotations
    import grpc_tools

    googleapis = Path(annotations.__file__).resolve().parents[2]
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    return [str(PROTO_ROOT), str(googleapis), str(well_known)]


def generate(out_dir: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi, *_pb2_grpc.py and package __init__.py files."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", *(f"-I{d}" for d in include_dirs())]
    args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + proto_files()) != 0:
        raise RuntimeError("protoc failed")
    return _write_package_inits(out_dir)


def descriptor_set(path: Path) -> None:
    """Every file of the contract, google.rpc status and details, and all their imports."""
    from grpc_tools import protoc

    path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        *(f"-I{d}" for d in include_dirs()),
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={path}",
    ]
    if protoc.main(args + proto_files() + STATUS_PROTOS) != 0:
        raise RuntimeError("protoc failed")


def _write_package_inits(out_dir: Path) -> list[Path]:
    written = []
    for directory in sorted({p.parent for p in (out_dir / PACKAGE).rglob("*_pb2.py")}):
        while directory != out_dir:
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')
            written.append(init)
            directory = directory.parent
    return written


def generated_files(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every generated file under root/protoserve."""
    suffixes = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "__init__.py")
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in (root / PACKAGE).rglob("*")
        if p.is_file() and p.name.endswith(suffixes)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=PROTO_ROOT)
    parser.add_argument("--descriptor-set", type=Path)
    args = parser.parse_args()
    if args.descriptor_set:
        descriptor_set(args.descriptor_set)
        print(f"wrote {args.descriptor_set}")
        return
    generate(args.out_dir)
    print(
        f"generated {len(generated_files(args.out_dir))} files under "
        f"{os.path.relpath(args.out_dir)}"
    )


if __name__ == "__main__":
    main()
