"""Architecture checks, chosen by the detected architecture type (cnn, transformer, rnn, generic):
fc_dominates_params, conv_bottleneck, missing_pooling, large_kernel, grayscale_channel_explosion (cnn);
attention_head_dim (transformer); embedding_oversized (transformer, rnn, generic); rnn_too_deep (rnn);
excessive_dropout (any)."""

from __future__ import annotations

from ._architecture import ArchNode, node_category
from ._issue import Finding
from ._registry import rule
from ._state import Context

CNN = ("cnn",)


def _shares_of(ctx: Context, category: str) -> list[tuple[str, str, float]]:
    arch = ctx.state.architecture
    if arch is None:
        return []
    shares = arch.param_share()
    return [(layer.name, layer.type, shares[layer.name]) for layer in arch.layers
            if layer.name in shares and node_category(layer.type) == category]


def _convs(ctx: Context) -> list[ArchNode]:
    arch = ctx.state.architecture
    return [n for n in arch.ordered_nodes() if n.kind == "convolution"] if arch is not None else []


@rule("fc_dominates_params", severity="warning", category="architecture", on=("arch",), arch_types=CNN)
def fc_dominates_params(ctx: Context) -> list[Finding]:
    limit = ctx.th.fc_dominates_pct
    return [Finding(
        title="Fully connected layer dominates the parameters",
        description=f"{name} ({kind}) holds {share * 100:.1f} % of all parameters (limit {limit * 100:g} %): the "
                    "feature map is flattened while still large.",
        suggestion="Pool before the classifier: `nn.AdaptiveAvgPool2d(1)` then `nn.Flatten()` and "
                   "`nn.Linear(channels, num_classes)`.",
        metric_key="param_share", metric_value=share, layer=name, thresholds=ctx.th.pick("fc_dominates_pct"),
    ) for name, kind, share in _shares_of(ctx, "linear") if share > limit]


@rule("conv_bottleneck", severity="info", category="architecture", on=("arch",), arch_types=CNN)
def conv_bottleneck(ctx: Context) -> list[Finding]:
    limit = ctx.th.conv_bottleneck_pct
    return [Finding(
        title="One convolution holds most parameters",
        description=f"{name} ({kind}) holds {share * 100:.1f} % of all parameters (limit {limit * 100:g} %).",
        suggestion="Use a bottleneck block: `nn.Conv2d(c, c // 4, 1)`, `nn.Conv2d(c // 4, c // 4, 3, padding=1)`, "
                   "`nn.Conv2d(c // 4, c, 1)`.",
        metric_key="param_share", metric_value=share, layer=name, thresholds=ctx.th.pick("conv_bottleneck_pct"),
    ) for name, kind, share in _shares_of(ctx, "convolution") if share > limit]


@rule("missing_pooling", severity="warning", category="architecture", on=("arch",), arch_types=CNN)
def missing_pooling(ctx: Context) -> list[Finding]:
    arch = ctx.state.architecture
    assert arch is not None
    limit = ctx.th.missing_pooling_convs
    runs: list[list[str]] = []
    current: list[str] = []
    for node in arch.ordered_nodes():
        kind = node.kind
        if kind == "convolution" and not any(s > 1 for s in node.stride):
            current.append(node.id)
            continue
        if kind in ("pooling", "convolution", "linear", "attention", "recurrent", "reshape"):
            if len(current) >= limit:
                runs.append(current)
            current = []  # pooling, a strided conv (it downsamples) or a dense layer ends the run
    if len(current) >= limit:
        runs.append(current)
    return [Finding(
        title="Convolutions without pooling",
        description=f"{len(run)} consecutive convolutions without pooling or stride ({', '.join(run)}): the feature "
                    "maps stay large, which makes later layers expensive.",
        suggestion=f"Downsample inside the run: add `nn.MaxPool2d(2)` after `{run[min(1, len(run) - 1)]}`, or give "
                   "a conv `stride=2`.",
        metric_key="consecutive_convs", metric_value=len(run), layer=run[0], key=run[0],
        thresholds=ctx.th.pick("missing_pooling_convs"),
    ) for run in runs]


@rule("large_kernel", severity="info", category="architecture", on=("arch",), arch_types=CNN)
def large_kernel(ctx: Context) -> list[Finding]:
    th = ctx.th
    arch = ctx.state.architecture
    assert arch is not None
    spatial = arch.input_shape[-2:] if len(arch.input_shape) >= 2 else ()
    if spatial and min(spatial) >= th.large_kernel_min_input:
        return []  # large inputs (ImageNet-sized) justify large kernels
    out = []
    for i, node in enumerate(_convs(ctx)):
        if not node.kernel_size or max(node.kernel_size) < th.large_kernel_size:
            continue
        if not spatial and i == 0:
            continue  # input size unknown: a large stem kernel is the common ResNet design
        out.append(Finding(
            title="Large convolution kernel",
            description=f"{node.id} uses a {'x'.join(map(str, node.kernel_size))} kernel"
                        + (f" on {spatial[0]}x{spatial[1]} inputs" if spatial else "") + ".",
            suggestion="Stack 3x3 convolutions instead (two 3x3 see 5x5, three see 7x7, with fewer parameters): "
                       "`nn.Conv2d(c, c, 3, padding=1)`.",
            metric_key="kernel_size", metric_value=max(node.kernel_size), layer=node.id,
            thresholds=th.pick("large_kernel_size", "large_kernel_min_input"),
        ))
    return out


@rule("grayscale_channel_explosion", severity="info", category="architecture", on=("arch",), arch_types=CNN)
def grayscale_channel_explosion(ctx: Context) -> list[Finding]:
    convs = _convs(ctx)
    limit = ctx.th.grayscale_max_channels
    if not convs:
        return []
    first = convs[0]
    if first.in_channels != 1 or first.out_channels is None or first.out_channels <= limit:
        return []
    return [Finding(
        title="Channel explosion on a grayscale input",
        description=f"The first convolution {first.id} expands 1 channel to {first.out_channels} (limit {limit}).",
        suggestion="Start narrower and grow gradually: `nn.Conv2d(1, 8, 3)`, then `nn.Conv2d(8, 16, 3)`.",
        metric_key="out_channels", metric_value=first.out_channels, layer=first.id,
        thresholds=ctx.th.pick("grayscale_max_channels"),
    )]


@rule("attention_head_dim", severity="warning", category="architecture", on=("arch",), arch_types=("transformer",))
def attention_head_dim(ctx: Context) -> list[Finding]:
    arch = ctx.state.architecture
    assert arch is not None
    limit = ctx.th.attention_min_head_dim
    out = []
    for node in arch.ordered_nodes():
        if node.kind != "attention" or not node.embed_dim or not node.num_heads:
            continue
        if node.embed_dim % node.num_heads:
            out.append(Finding(
                title="Embedding not divisible by heads",
                description=f"{node.id}: embed_dim {node.embed_dim} is not divisible by num_heads {node.num_heads} "
                            f"({node.embed_dim / node.num_heads:.2f} per head).",
                suggestion=f"Pick a head count that divides {node.embed_dim}, e.g. "
                           f"`nn.MultiheadAttention({node.embed_dim}, num_heads="
                           f"{_divisor_near(node.embed_dim, node.num_heads)})`.",
                metric_key="head_dim", metric_value=node.embed_dim / node.num_heads, layer=node.id,
            ))
        elif node.embed_dim // node.num_heads < limit:
            out.append(Finding(
                title="Very small attention heads",
                description=f"{node.id}: {node.num_heads} heads of {node.embed_dim // node.num_heads} dimensions "
                            f"(below {limit}); tiny heads attend poorly.",
                suggestion="Use fewer, wider heads (64 dimensions per head is the common choice).",
                metric_key="head_dim", metric_value=node.embed_dim // node.num_heads, layer=node.id,
                severity="info", thresholds=ctx.th.pick("attention_min_head_dim"),
            ))
    return out


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


@rule("embedding_oversized", severity="info", category="architecture", on=("arch",),
      arch_types=("transformer", "rnn", "generic"))
def embedding_oversized(ctx: Context) -> list[Finding]:
    arch = ctx.state.architecture
    assert arch is not None
    ratio = ctx.th.embedding_dim_vocab_ratio
    return [Finding(
        title="Oversized embedding",
        description=f"{n.id}: {n.embedding_dim} dimensions for a vocabulary of {n.num_embeddings}.",
        suggestion=f"A smaller embedding carries the same information: `nn.Embedding({n.num_embeddings}, "
                   f"{max(8, n.num_embeddings // 4)})` (with a projection if the model width must stay).",
        metric_key="embedding_dim", metric_value=n.embedding_dim, layer=n.id,
        thresholds=ctx.th.pick("embedding_dim_vocab_ratio"),
    ) for n in arch.ordered_nodes()
        if n.kind == "embedding" and n.embedding_dim and n.num_embeddings
        and n.embedding_dim > ratio * n.num_embeddings]


@rule("rnn_too_deep", severity="warning", category="architecture", on=("arch",), arch_types=("rnn",))
def rnn_too_deep(ctx: Context) -> list[Finding]:
    arch = ctx.state.architecture
    assert arch is not None
    limit = ctx.th.rnn_max_layers
    return [Finding(
        title="Deep recurrent stack",
        description=f"{n.id} ({n.type}) stacks {n.num_layers} layers (limit {limit}): gradients vanish through "
                    "depth and time.",
        suggestion=f"Use 2-3 layers with dropout between them: `nn.{n.type}(input_size, hidden_size, num_layers=2, "
                   "dropout=0.2)`, or a Transformer encoder.",
        metric_key="num_layers", metric_value=n.num_layers, layer=n.id, thresholds=ctx.th.pick("rnn_max_layers"),
    ) for n in arch.ordered_nodes() if n.kind == "recurrent" and n.num_layers and n.num_layers > limit]


@rule("excessive_dropout", severity="warning", category="architecture", on=("arch",))
def excessive_dropout(ctx: Context) -> list[Finding]:
    arch = ctx.state.architecture
    if arch is None:
        return []
    limit = ctx.th.dropout_max_p
    heavy = [n for n in arch.ordered_nodes() if n.kind == "dropout" and n.p is not None and n.p > limit]
    if not heavy:
        return []
    worst = max(heavy, key=lambda n: n.p or 0.0)
    names = ", ".join(f"{n.id} (p={n.p:g})" for n in heavy[:4]) + (", ..." if len(heavy) > 4 else "")
    return [Finding(
        title="Dropout drops most units",
        description=f"{len(heavy)} dropout layer(s) drop more than {limit:g} of their units at every training step: "
                    f"{names}. PyTorch's `p` is the probability of dropping (TensorFlow 1's `keep_prob` is the "
                    "opposite): the layers after them see a tenth of the signal, training underfits and its loss "
                    "stays above the validation loss.",
        suggestion=f"Use `nn.Dropout(p={1 - (worst.p or 0.0):.2g})` if {worst.p:g} was meant as a keep "
                   "probability; 0.1-0.5 is the usual range.",
        metric_key="dropout_p", metric_value=worst.p, layer=worst.id,
        evidence={"layers": [n.id for n in heavy], "p": [n.p for n in heavy]},
        thresholds=ctx.th.pick("dropout_max_p"),
    )]
