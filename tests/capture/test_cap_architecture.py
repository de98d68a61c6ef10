"""Architecture channel: describe_model's layers, attributes and tree; ShapeTracer's path and shapes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _models_cap import SmallCNN, TinyLSTM, TinyTransformer, all_hooks
from google.protobuf import json_format
from torch import nn

from atlas_callback._architecture import ShapeTracer, describe_model


def _attrs(info: Any, name: str) -> dict[str, Any]:
    layer = next(layer for layer in info.layers if layer.name == name)
    return json_format.MessageToDict(layer.attributes)


@pytest.mark.parametrize(("module", "expected"), [
    (nn.Linear(4, 3), {"category": "linear", "in_features": 4, "out_features": 3, "has_bias": True}),
    (nn.Linear(4, 3, bias=False), {"has_bias": False}),
    (nn.Conv1d(2, 5, 3), {"category": "convolution", "in_channels": 2, "out_channels": 5, "kernel_size": [3]}),
    (nn.Conv2d(3, 8, (5, 3), stride=2, padding=1, groups=1),
     {"category": "convolution", "in_channels": 3, "out_channels": 8, "kernel_size": [5, 3], "stride": [2, 2],
      "padding": [1, 1], "groups": 1}),
    (nn.Conv2d(4, 4, 3, padding="same", groups=4), {"padding": "same", "groups": 4}),
    (nn.Conv3d(1, 2, 3), {"category": "convolution", "kernel_size": [3, 3, 3]}),
    (nn.Embedding(100, 8), {"category": "embedding", "num_embeddings": 100, "embedding_dim": 8}),
    (nn.LayerNorm(8, eps=1e-6), {"category": "normalization", "normalized_shape": [8], "eps": 1e-6}),
    (nn.BatchNorm2d(6), {"category": "normalization", "num_features": 6, "eps": 1e-5}),
    (nn.Dropout(0.3), {"category": "dropout", "p": 0.3}),
    (nn.MultiheadAttention(32, 4), {"category": "attention", "embed_dim": 32, "num_heads": 4, "head_dim": 8}),
    (nn.LSTM(5, 12, num_layers=3, bidirectional=True),
     {"category": "recurrent", "input_size": 5, "hidden_size": 12, "num_layers": 3, "bidirectional": True}),
    (nn.GRU(4, 6), {"category": "recurrent", "hidden_size": 6, "num_layers": 1, "bidirectional": False}),
    (nn.RNN(4, 6, num_layers=2), {"category": "recurrent", "num_layers": 2}),
    (nn.ReLU(), {"category": "activation"}),
    (nn.Sigmoid(), {"category": "activation"}),
    (nn.Tanh(), {"category": "activation"}),
    (nn.GELU(approximate="tanh"), {"category": "activation", "approximate": "tanh"}),
    (nn.LeakyReLU(0.2), {"category": "activation", "negative_slope": 0.2}),
    (nn.MaxPool2d(2), {"category": "pooling", "kernel_size": [2]}),
    (nn.AdaptiveAvgPool2d(1), {"category": "pooling", "output_size": [1]}),
    (nn.Flatten(), {"category": "reshape"}),
    (nn.Identity(), {"category": "other"}),
])
def test_layer_attributes_by_type(module: nn.Module, expected: dict[str, Any]) -> None:
    info = describe_model(nn.Sequential(module))
    assert [layer.name for layer in info.layers] == ["0"]
    assert info.layers[0].type == type(module).__name__
    attrs = _attrs(info, "0")
    assert {k: attrs.get(k) for k in expected} == expected


def test_counts_shares_and_trainable() -> None:
    model = SmallCNN()
    model.conv1.requires_grad_(False)
    info = describe_model(model)
    total = sum(p.numel() for p in model.parameters())
    assert info.model_class == "SmallCNN"
    assert info.total_parameters == total
    assert info.trainable_parameters == total - sum(p.numel() for p in model.conv1.parameters())
    assert sum(layer.parameters for layer in info.layers) == total
    assert sum(layer.pct_of_total for layer in info.layers) == pytest.approx(100.0)
    by_name = {layer.name: layer for layer in info.layers}
    assert list(by_name) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
    assert by_name["conv1"].trainable_parameters == 0 and by_name["conv1"].parameters == 4 * 9 + 4
    assert by_name["fc1"].pct_of_total == pytest.approx(100.0 * (72 * 16 + 16) / total)


def test_attention_is_one_layer_and_the_tree_keeps_its_children() -> None:
    model = TinyTransformer()
    info = describe_model(model)
    names = [layer.name for layer in info.layers]
    assert "encoder.self_attn" in names and "encoder.self_attn.out_proj" not in names
    attn = next(layer for layer in info.layers if layer.name == "encoder.self_attn")
    assert attn.parameters == sum(p.numel() for p in model.encoder.self_attn.parameters())  # out_proj included
    assert sum(layer.parameters for layer in info.layers) == info.total_parameters
    tree = json_format.MessageToDict(info.module_tree)
    encoder = next(c for c in tree["children"] if c["name"] == "encoder")
    assert encoder["attributes"] == {"d_model": 16, "nhead": 2, "dim_feedforward": 32, "norm_first": False,
                                     "activation": "relu"}
    attn_node = next(c for c in encoder["children"] if c["name"] == "self_attn")
    assert [c["name"] for c in attn_node["children"]] == ["out_proj"]
    assert tree["parameters"] == info.total_parameters


def test_exotic_modules_get_generic_info_and_never_raise() -> None:
    class Weird(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))  # direct parameter next to children
            self.inner = nn.Linear(3, 3)

    class BrokenConv(nn.Conv2d):
        def __init__(self) -> None:
            super().__init__(1, 1, 1)
            del self.groups  # an attribute the describer reads is gone

    model = nn.Sequential(Weird(), nn.LazyLinear(4), BrokenConv())
    info = describe_model(model)
    names = {layer.name: layer for layer in info.layers}
    assert names["0"].type == "Weird" and names["0"].parameters == 3
    assert names["0.inner"].parameters == 12
    assert names["1"].parameters == 0  # lazy: not materialised yet
    assert _attrs(info, "2") == {"category": "convolution"}


def test_describe_names_every_layer_of_a_hundred() -> None:
    """(Its time at run start is benchmarks/describe_model.py's.)"""
    model = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.LayerNorm(64), nn.Dropout(0.1))
                            for _ in range(25)])
    info = describe_model(model)
    assert len(info.layers) == 100
    assert [x.type for x in info.layers[:4]] == ["Linear", "ReLU", "LayerNorm", "Dropout"]


def test_shape_tracer_records_the_cnn_path_and_shapes_once() -> None:
    model = SmallCNN()
    tracer = ShapeTracer(model)
    tracer.attach()
    assert all_hooks(model) > 0
    model(torch.randn(2, 1, 12, 12))
    assert tracer.done and all_hooks(model) == 0  # removed by itself after one pass
    model(torch.randn(5, 1, 12, 12))  # not recorded
    info = tracer.fill(describe_model(model))
    assert list(info.sequential_path) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1",
                                          "relu3", "fc2"]
    flow = {s.layer: (list(s.input_shape), list(s.output_shape)) for s in info.dimension_flow}
    assert flow["conv1"] == ([2, 1, 12, 12], [2, 4, 12, 12])
    assert flow["pool1"] == ([2, 4, 12, 12], [2, 4, 6, 6])
    assert flow["pool2"] == ([2, 8, 6, 6], [2, 8, 3, 3])
    assert flow["flatten"] == ([2, 8, 3, 3], [2, 72])
    assert flow["fc2"] == ([2, 16], [2, 10])


@pytest.mark.parametrize(("model", "x", "first", "last_out"), [
    (TinyTransformer(), torch.randint(0, 50, (3, 6)), ("embed", [3, 6], [3, 6, 16]), [3, 10]),
    (TinyLSTM(), torch.randn(3, 7, 5), ("lstm", [3, 7, 5], [3, 7, 12]), [3, 10]),
])
def test_shape_tracer_on_sequence_models(model: nn.Module, x: torch.Tensor, first: tuple[str, list[int], list[int]],
                                         last_out: list[int]) -> None:
    tracer = ShapeTracer(model)
    tracer.attach()
    model(x)
    info = tracer.fill(describe_model(model))
    stage = info.dimension_flow[0]
    assert (stage.layer, list(stage.input_shape), list(stage.output_shape)) == first
    assert list(info.dimension_flow[-1].output_shape) == last_out
    assert all_hooks(model) == 0


def test_shape_tracer_detach_without_a_forward_removes_its_hooks() -> None:
    model = SmallCNN()
    tracer = ShapeTracer(model)
    tracer.attach()
    tracer.detach()
    tracer.detach()
    assert all_hooks(model) == 0 and not tracer.done
    assert list(tracer.fill(describe_model(model)).sequential_path) == []


def test_shape_tracer_rejects_a_non_module() -> None:
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module, got int"):
        ShapeTracer(3)  # type: ignore[arg-type]
