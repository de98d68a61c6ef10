"""Generated protobuf and gRPC modules of the `atlas.v1` package (see scripts/gen_proto.py)."""
