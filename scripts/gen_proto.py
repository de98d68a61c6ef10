#!/usr/bin/env python3
"""Generate the Python protobuf/gRPC modules from proto/ (the one way to regenerate them).

    python scripts/gen_proto.py            # rewrite proto/atlas_proto/v1/*_pb2*.py(i)
    python scripts/gen_proto.py --out DIR  # write into DIR instead (the reproducibility test uses this)

Needs the exact grpcio-tools pinned in pyproject.toml's `dev` extra. The .proto files live under
proto/atlas_proto/v1 and are compiled with `-I proto`, so generated modules import each other as
`atlas_proto.v1.*`, which is the name the distribution installs `proto/` under.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
SOURCES = sorted((PROTO_ROOT / "atlas_proto" / "v1").glob("*.proto"))


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p.relative_to(PROTO_ROOT)) for p in SOURCES],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed: " + " ".join(args))
    return sorted((out / "atlas_proto" / "v1").glob("*_pb2*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=PROTO_ROOT, help="output root (default: proto/)")
    ns = parser.parse_args()
    for path in generate(ns.out):
        print(path.relative_to(ns.out))


if __name__ == "__main__":
    sys.exit(main())
