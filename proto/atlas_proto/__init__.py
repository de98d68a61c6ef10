"""Atlas wire contract: generated modules for the `.proto` files of package `atlas.v1`."""
