"""The architecture channel: what the model is made of, and the shapes it passes along.

``describe_model(model)`` lists the model's layers (leaf modules, plus modules that are layers of their own such as
``nn.MultiheadAttention``, whose ``out_proj`` is used through its weights, never called) with type, parameter counts,
share of all parameters and type-specific attributes (the keys ``atlas_diagnostics`` reads: ``category``,
``in_features``, ``out_channels``, ``kernel_size``, ``num_heads``, ``num_layers``, ...), and the module tree.
It reads only module attributes and parameter sizes: no forward pass, no tensor data.

``ShapeTracer(model)`` records, during ONE real forward pass, the order in which the layers run (``sequential_path``)
and the input/output shape at each of them (``dimension_flow``); then it removes its hooks by itself. Only shapes
are kept, never tensors.

A layer's ``category`` is one of: convolution, linear, embedding, normalization, dropout, attention, recurrent,
activation, pooling, reshape (``Flatten``/``Unflatten``, the diagnostics' own word) and other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from atlas_proto.v1 import telemetry_pb2 as tpb

__all__ = ["ShapeTracer", "describe_model", "iter_layers", "layer_category"]

logger = logging.getLogger(__name__)

# Modules that are one layer although they have children (their children are not called through ``forward``).
_OPAQUE: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)

_CATEGORY_BY_CLASS: tuple[tuple[tuple[type[nn.Module], ...], str], ...] = (
    ((nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.Transformer,
      nn.TransformerEncoder, nn.TransformerDecoder), "attention"),
    ((nn.RNNBase, nn.RNNCellBase), "recurrent"),
    ((nn.modules.conv._ConvNd,), "convolution"),
    ((nn.Linear, nn.Bilinear), "linear"),
    ((nn.Embedding, nn.EmbeddingBag), "embedding"),
    ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
      *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())), "normalization"),
    ((nn.modules.dropout._DropoutNd,), "dropout"),
    ((nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
      nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd, nn.modules.pooling._MaxUnpoolNd),
     "pooling"),
    ((nn.Flatten, nn.Unflatten), "reshape"),
    ((nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
      nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign, nn.Softshrink,
      nn.Hardshrink, nn.Tanhshrink, nn.LogSigmoid, nn.Threshold, nn.GLU, nn.Softmax, nn.LogSoftmax,
      nn.Softmin, nn.Softmax2d), "activation"),
)

_category_cache: dict[type, str] = {}


def layer_category(module: nn.Module) -> str:
    """The category of a module (see the module docstring); ``"other"`` for anything unknown."""
    cls = type(module)
    cached = _category_cache.get(cls)
    if cached is not None:
        return cached
    category = "other"
    for classes, name in _CATEGORY_BY_CLASS:
        if isinstance(module, classes):
            category = name
            break
    _category_cache[cls] = category
    return category


def _ints(value: Any) -> list[int] | Any:
    """``3`` or ``(3, 3)`` become a list of ints; strings (``padding="same"``) stay as they are."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return [value]
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return list(value)
    return value if isinstance(value, str) else str(value)


def _attrs_linear(m: Any) -> dict[str, Any]:
    return {"in_features": m.in_features, "out_features": m.out_features, "has_bias": m.bias is not None}


def _attrs_bilinear(m: Any) -> dict[str, Any]:
    return {"in1_features": m.in1_features, "in2_features": m.in2_features, "out_features": m.out_features,
            "has_bias": m.bias is not None}


def _attrs_conv(m: Any) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": _ints(m.kernel_size),
            "stride": _ints(m.stride), "padding": _ints(m.padding), "dilation": _ints(m.dilation),
            "groups": m.groups, "has_bias": m.bias is not None, "transposed": bool(m.transposed)}


def _attrs_embedding(m: Any) -> dict[str, Any]:
    out = {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim}
    if getattr(m, "padding_idx", None) is not None:
        out["padding_idx"] = m.padding_idx
    return out


def _attrs_batchnorm(m: Any) -> dict[str, Any]:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine}


def _attrs_layernorm(m: Any) -> dict[str, Any]:
    return {"normalized_shape": _ints(m.normalized_shape), "eps": m.eps,
            "elementwise_affine": m.elementwise_affine}


def _attrs_groupnorm(m: Any) -> dict[str, Any]:
    return {"num_groups": m.num_groups, "num_channels": m.num_channels, "eps": m.eps}


def _attrs_dropout(m: Any) -> dict[str, Any]:
    return {"p": m.p}


def _attrs_mha(m: Any) -> dict[str, Any]:
    return {"embed_dim": m.embed_dim, "num_heads": m.num_heads, "head_dim": m.head_dim,
            "batch_first": m.batch_first, "dropout": m.dropout, "kdim": m.kdim, "vdim": m.vdim}


def _attrs_rnn(m: Any) -> dict[str, Any]:
    return {"mode": m.mode, "input_size": m.input_size, "hidden_size": m.hidden_size, "num_layers": m.num_layers,
            "bidirectional": m.bidirectional, "batch_first": m.batch_first, "dropout": m.dropout,
            "has_bias": m.bias}


def _attrs_rnn_cell(m: Any) -> dict[str, Any]:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size, "has_bias": m.bias}


def _attrs_pool(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("kernel_size", "stride", "padding", "output_size"):
        if hasattr(m, key) and getattr(m, key) is not None:
            out[key] = _ints(getattr(m, key))
    return out


def _attrs_flatten(m: Any) -> dict[str, Any]:
    return {"start_dim": getattr(m, "start_dim", None), "end_dim": getattr(m, "end_dim", None)}


def _attrs_activation(m: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("negative_slope", "approximate", "alpha", "beta", "threshold", "min_val", "max_val", "dim",
                "inplace"):
        value = getattr(m, key, None)
        if isinstance(value, (int, float, str, bool)):
            out[key] = value
    return out


def _attrs_encoder_layer(m: Any) -> dict[str, Any]:
    attn = m.self_attn
    activation = getattr(m, "activation", None)
    act_name = getattr(activation, "__name__", None) or type(activation).__name__
    return {"d_model": attn.embed_dim, "nhead": attn.num_heads, "dim_feedforward": m.linear1.out_features,
            "norm_first": bool(getattr(m, "norm_first", False)), "activation": act_name}


_ATTRS: tuple[tuple[type[nn.Module] | tuple[type[nn.Module], ...], Callable[[Any], dict[str, Any]]], ...] = (
    (nn.Linear, _attrs_linear),
    (nn.Bilinear, _attrs_bilinear),
    (nn.modules.conv._ConvNd, _attrs_conv),
    ((nn.Embedding, nn.EmbeddingBag), _attrs_embedding),
    (nn.modules.batchnorm._NormBase, _attrs_batchnorm),
    (nn.LayerNorm, _attrs_layernorm),
    (nn.GroupNorm, _attrs_groupnorm),
    (nn.modules.dropout._DropoutNd, _attrs_dropout),
    (nn.MultiheadAttention, _attrs_mha),
    (nn.RNNBase, _attrs_rnn),
    (nn.RNNCellBase, _attrs_rnn_cell),
    ((nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
      nn.modules.pooling._AdaptiveMaxPoolNd), _attrs_pool),
    ((nn.Flatten, nn.Unflatten), _attrs_flatten),
    ((nn.TransformerEncoderLayer, nn.TransformerDecoderLayer), _attrs_encoder_layer),
)


def _attributes(module: nn.Module) -> dict[str, Any]:
    """``category`` plus the attributes of the module's type; generic info only for unknown or odd modules."""
    category = layer_category(module)
    out: dict[str, Any] = {}
    for classes, fn in _ATTRS:
        if isinstance(module, classes):
            try:
                out = fn(module)
            except Exception:  # an exotic subclass without the usual attributes: generic info only
                logger.debug("no attributes for %s", type(module).__name__, exc_info=True)
                out = {}
            break
    else:
        if category == "activation":
            out = _attrs_activation(module)
    out["category"] = category
    return {k: v for k, v in out.items() if v is not None}


def _numel(params: Iterator[nn.Parameter]) -> tuple[int, int]:
    """(all, trainable) element counts; uninitialised (lazy) parameters count as 0."""
    total = trainable = 0
    for p in params:
        try:
            n = p.numel()
        except Exception:  # torch.nn.parameter.UninitializedParameter
            continue
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


def iter_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module, bool]]:
    """The model's layers in registration order as ``(name, module, recursive)``.

    A layer is a leaf module, a module that is one layer of its own (``nn.MultiheadAttention``: its parameters are
    counted recursively and its children are not layers), or a container that holds parameters directly (those
    direct parameters only: ``recursive`` is False). The root is named by its class when it is a layer itself.
    """
    stack: list[tuple[str, nn.Module]] = [("", model)]
    seen: set[int] = set()
    while stack:
        name, module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        label = name or type(model).__name__
        children = list(module.named_children())
        if isinstance(module, _OPAQUE) or not children:
            yield label, module, True
            continue
        if next(module.parameters(recurse=False), None) is not None:
            yield label, module, False
        prefix = f"{name}." if name else ""
        stack.extend((prefix + child_name, child) for child_name, child in reversed(children) if child is not None)


def _struct(data: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(data)
    return s


def _tree(module: nn.Module, name: str, depth: int = 0) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "type": type(module).__name__}
    try:
        node["parameters"] = _numel(module.parameters())[0]
    except Exception:
        node["parameters"] = 0
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        try:
            node["attributes"] = _attrs_encoder_layer(module)
        except Exception:
            pass
    if depth < 64:  # a pathological nesting depth cannot blow the stack
        children = [_tree(child, child_name, depth + 1) for child_name, child in module.named_children()
                    if child is not None]
        if children:
            node["children"] = children
    return node


def describe_model(model: nn.Module) -> tpb.ModelInfo:
    """The ``ModelInfo`` of ``model``: layers with counts, shares and attributes, and the module tree.

    Never raises for odd modules: what cannot be read is left out. ``sequential_path`` and ``dimension_flow`` stay
    empty; ``ShapeTracer.fill`` writes them after a real forward pass.
    """
    info = tpb.ModelInfo(model_class=type(model).__name__)
    total, trainable = _numel(model.parameters())
    info.total_parameters = total
    info.trainable_parameters = trainable
    for name, module, recursive in iter_layers(model):
        try:
            n, n_train = _numel(module.parameters(recurse=recursive))
            layer = info.layers.add(name=name, type=type(module).__name__, parameters=n,
                                    trainable_parameters=n_train,
                                    pct_of_total=100.0 * n / total if total else 0.0)
            layer.attributes.update(_attributes(module))
        except Exception:  # never let one exotic module lose the whole description
            logger.debug("could not describe layer %s", name, exc_info=True)
    try:
        info.module_tree.update(_tree(model, type(model).__name__))
    except Exception:
        logger.warning("could not build the module tree of %s", type(model).__name__, exc_info=True)
    return info


def _first_tensor(value: Any, depth: int = 0) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if depth < 3 and isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item, depth + 1)
            if found is not None:
                return found
    if depth < 3 and isinstance(value, dict):
        for item in value.values():
            found = _first_tensor(item, depth + 1)
            if found is not None:
                return found
    return None


class ShapeTracer:
    """Records the execution order of the layers and their input/output shapes during one forward pass.

    ``attach()`` installs a forward hook on each layer (see ``iter_layers``) and one on the model; after the
    model's first complete forward pass every hook is removed by itself. ``detach()`` removes whatever is left
    (call it if no forward ran). ``fill(info)`` writes ``sequential_path`` and ``dimension_flow``. Each layer is
    recorded at its first call only; only shapes are kept.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        self._model = model
        self._handles: list[RemovableHandle] = []
        self._stages: list[tuple[str, list[int], list[int]]] = []
        self._seen: set[str] = set()
        self.done = False

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        """Install the hooks for the next forward pass (a no-op when already attached or done)."""
        if self._handles or self.done:
            return
        try:
            for name, module, _ in iter_layers(self._model):
                if module is self._model:
                    continue
                self._handles.append(module.register_forward_hook(self._layer_hook(name), with_kwargs=True))
            self._handles.append(self._model.register_forward_hook(self._root_hook))
        except Exception:
            logger.warning("shape tracing disabled: could not install hooks", exc_info=True)
            self.detach()

    def _layer_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if name in self._seen:
                return
            self._seen.add(name)
            try:
                inp = _first_tensor(args) if args else None
                if inp is None:
                    inp = _first_tensor(kwargs)
                out = _first_tensor(output)
                self._stages.append((name, list(inp.shape) if inp is not None else [],
                                     list(out.shape) if out is not None else []))
            except Exception:
                logger.debug("no shape for %s", name, exc_info=True)
        return hook

    def _root_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.done = True
        self.detach()

    def detach(self) -> None:
        """Remove every hook this tracer installed (safe to call twice)."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    @property
    def sequential_path(self) -> list[str]:
        return [name for name, _, _ in self._stages]

    def fill(self, info: tpb.ModelInfo) -> tpb.ModelInfo:
        """Write the recorded path and shapes into ``info`` (replacing earlier ones) and return it."""
        del info.sequential_path[:]
        del info.dimension_flow[:]
        for name, shape_in, shape_out in self._stages:
            info.sequential_path.append(name)
            info.dimension_flow.add(layer=name, input_shape=shape_in, output_shape=shape_out)
        return info
