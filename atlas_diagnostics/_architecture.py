"""The model's architecture and the run's setting, and architecture-type detection.

``Architecture`` mirrors the reference's ``model_architecture`` (section 7.4): a flat list of leaf layers with their
parameter counts, the layer graph's nodes with type-specific attributes, and the sequential path of leaf ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._exceptions import RecordError
from ._records import _Record

__all__ = ["ArchLayer", "ArchNode", "Architecture", "RunInfo", "detect_arch_type", "node_category"]

_INT_TUPLES = ("kernel_size", "stride", "padding", "input_shape")


@dataclass(frozen=True, slots=True)
class ArchLayer(_Record):
    """One leaf module: its type, parameter count and share of all parameters in percent (0-100)."""

    name: str
    type: str
    parameters: int = 0
    pct_of_total: float | None = None


@dataclass(frozen=True, slots=True)
class ArchNode(_Record):
    """One node of the layer graph with the attributes its type has (others stay ``None``)."""

    id: str
    type: str
    category: str | None = None  # convolution, pooling, linear, attention, recurrent, embedding, ...; derived if None
    parameters: int | None = None
    # Linear
    in_features: int | None = None
    out_features: int | None = None
    # Conv
    in_channels: int | None = None
    out_channels: int | None = None
    kernel_size: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    # Embedding
    num_embeddings: int | None = None
    embedding_dim: int | None = None
    # MultiheadAttention
    embed_dim: int | None = None
    num_heads: int | None = None
    # RNN / LSTM / GRU
    input_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    bidirectional: bool | None = None
    batch_first: bool | None = None  # RNN/LSTM/GRU and MultiheadAttention
    # Dropout
    p: float | None = None  # the probability of dropping a unit
    # as traced in the first forward pass: the layer's first input, batch dimension included (an RNN without
    # batch_first reads it as (time, batch, features)); empty when not traced
    input_shape: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchNode:
        fixed = dict(data)
        for key in _INT_TUPLES:  # torch reports kernel_size=3 or (3, 3); keep a tuple either way
            if isinstance(fixed.get(key), int) and not isinstance(fixed.get(key), bool):
                fixed[key] = [fixed[key]]
        return super(ArchNode, cls).from_dict(fixed)  # type: ignore[no-any-return]

    @property
    def kind(self) -> str:
        return node_category(self.type, self.category)


@dataclass(frozen=True, slots=True)
class Architecture(_Record):
    """The model: parameter totals, leaf layers, graph nodes and the sequential path."""

    total_parameters: int | None = None
    layers: tuple[ArchLayer, ...] = ()
    nodes: tuple[ArchNode, ...] = ()
    sequential_path: tuple[str, ...] = ()
    input_shape: tuple[int, ...] = ()  # one sample, e.g. (1, 28, 28); empty when unknown

    _nested: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "layers": ("tuple", ArchLayer),
        "nodes": ("tuple", ArchNode),
    }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        fixed = dict(data)
        if isinstance(fixed.get("layers"), Mapping):  # the prototype's {"conv1": {"type": ...}} shape
            fixed["layers"] = [{"name": k, **v} for k, v in fixed["layers"].items()]
        return super(Architecture, cls).from_dict(fixed)  # type: ignore[no-any-return]

    def ordered_nodes(self) -> tuple[ArchNode, ...]:
        """Nodes in sequential-path order (nodes off the path keep their listed order, after it)."""
        if not self.sequential_path:
            return self.nodes
        by_id = {n.id: n for n in self.nodes}
        on_path = [by_id[i] for i in self.sequential_path if i in by_id]
        seen = {n.id for n in on_path}
        return tuple(on_path) + tuple(n for n in self.nodes if n.id not in seen)

    def param_share(self) -> dict[str, float]:
        """Each leaf layer's share of all parameters as a fraction (0-1)."""
        total = self.total_parameters or sum(layer.parameters for layer in self.layers)
        out: dict[str, float] = {}
        for layer in self.layers:
            if layer.pct_of_total is not None:
                out[layer.name] = layer.pct_of_total / 100.0
            elif total:
                out[layer.name] = layer.parameters / total
        return out

    def layer_type(self, name: str) -> str | None:
        for layer in self.layers:
            if layer.name == name:
                return layer.type
        for node in self.nodes:
            if node.id == name:
                return node.type
        return None


_DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True, slots=True)
class RunInfo(_Record):
    """What the run was set up with.

    ``cpu_only_by_choice``: the user asked for CPU (``accelerator="cpu"``, no GPU wanted); device checks then say
    one info and nothing else. ``cuda_available``: a GPU was visible to the trainer (``None`` when unknown).
    """

    device: str = "cpu"
    cpu_only_by_choice: bool = False
    world_size: int = 1
    framework: str | None = None
    cuda_available: bool | None = None

    def __post_init__(self) -> None:
        if self.device not in _DEVICES:
            raise RecordError(f"RunInfo.device must be one of {', '.join(_DEVICES)}, got {self.device!r}")
        if isinstance(self.world_size, bool) or not isinstance(self.world_size, int) or self.world_size < 1:
            raise RecordError(f"RunInfo.world_size must be an integer >= 1, got {self.world_size!r}")


_CATEGORY_BY_TYPE: tuple[tuple[str, str], ...] = (
    ("multiheadattention", "attention"),
    ("attention", "attention"),
    ("transformer", "attention"),
    ("lstm", "recurrent"),
    ("gru", "recurrent"),
    ("rnn", "recurrent"),
    ("convtranspose", "convolution"),
    ("conv", "convolution"),
    ("pool", "pooling"),
    ("embedding", "embedding"),
    ("linear", "linear"),
    ("batchnorm", "normalization"),
    ("layernorm", "normalization"),
    ("groupnorm", "normalization"),
    ("norm", "normalization"),
    ("dropout", "dropout"),
    ("relu", "activation"),
    ("gelu", "activation"),
    ("sigmoid", "activation"),
    ("tanh", "activation"),
    ("silu", "activation"),
    ("softmax", "activation"),
    ("elu", "activation"),
    ("flatten", "reshape"),
)


def node_category(type_name: str, category: str | None = None) -> str:
    """The node's category: the one given, else derived from the module type name."""
    if category:
        return category
    lowered = type_name.lower()
    for needle, cat in _CATEGORY_BY_TYPE:
        if needle in lowered:
            return cat
    return "other"


def detect_arch_type(architecture: Architecture | None) -> str:
    """``"transformer"`` if any node is attention, else ``"rnn"`` if recurrent, ``"cnn"`` if convolution, else
    ``"generic"`` (reference 5.5, "Architecture Detection")."""
    if architecture is None:
        return "generic"
    kinds = {n.kind for n in architecture.nodes}
    kinds |= {node_category(layer.type) for layer in architecture.layers}
    for kind, arch in (("attention", "transformer"), ("recurrent", "rnn"), ("convolution", "cnn")):
        if kind in kinds:
            return arch
    return "generic"
