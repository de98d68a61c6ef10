"""Layer-health checks (category sustainability): dead_layers, vanishing_gradients, depth_gradient_ratio,
frozen_output_layers, activation_collapse, redundant_layers, saturated_activation.

An epoch without layer-health data gives no verdict (earlier issues stay as they are).
"""

from __future__ import annotations

from collections.abc import Callable

from ._issue import Finding
from ._records import LayerHealthRecord
from ._registry import rule
from ._state import Context, finite


def attribute_path(name: str) -> str:
    """A module's qualified name as Python reaches it: `net.3` -> `net[3]` (a Sequential index),
    `blocks.a-b` -> `blocks["a-b"]` (a ModuleDict key that is no identifier)."""
    out = ""
    for part in name.split("."):
        if part.isdigit():
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _held(ctx: Context, name: str, n: int, cond: Callable[[LayerHealthRecord], bool]) -> bool:
    """``cond`` held for layer ``name`` in each of the last ``n`` epochs."""
    recent = ctx.state.recent(n)
    if len(recent) < n or n < 1:
        return False
    for rec in recent:
        layer = rec.layers.get(name)
        if layer is None or not cond(layer):
            return False
    return True


def _is_dead(ctx: Context, h: LayerHealthRecord) -> bool:
    return finite(h.zero_fraction) and h.zero_fraction > ctx.th.dead_layer_zero_fraction  # type: ignore[operator]


def _batches(ctx: Context, name: str, n: int) -> int | None:
    """The sampled batches behind layer ``name``'s statistics over the last ``n`` epochs (None when a record does
    not say: an older trainer)."""
    total = 0
    for rec in ctx.state.recent(n):
        h = rec.layers.get(name)
        if h is None or h.samples is None:
            return None
        total += h.samples
    return total


def loss_improving(ctx: Context) -> bool:
    """Whether the training or the validation loss made a new best, by ``loss_plateau_min_improvement_pct``, within
    the last ``loss_plateau_window`` epochs (against the best of the epochs before them, or the first epoch)."""
    th = ctx.th
    cur = ctx.epoch
    assert cur is not None
    recent = ctx.state.recent(len(ctx.state.window))
    for value in (lambda r: r.train_mean, lambda r: r.val_loss):
        series = [(r.epoch, float(value(r))) for r in recent if finite(value(r))]
        before = [v for e, v in series if e <= cur.epoch - th.loss_plateau_window] or [v for _, v in series[:1]]
        last = [v for e, v in series[1:] if e > cur.epoch - th.loss_plateau_window]
        if before and last and min(last) < min(before) - abs(min(before)) * th.loss_plateau_min_improvement_pct:
            return True
    return False


@rule("dead_layers", severity="warning", category="sustainability")
def dead_layers(ctx: Context) -> list[Finding] | None:
    """Units whose activation is always zero. A warning; info while the loss still improves (dead units are common
    in healthy ReLU nets); critical only when the whole layer is dead and the loss has stopped improving."""
    cur = ctx.epoch
    assert cur is not None
    if not cur.layers:
        return None
    th = ctx.th
    out = []
    improving = None
    for name, h in cur.layers.items():
        if not _is_dead(ctx, h) or not _held(ctx, name, th.dead_layer_epochs, lambda x: _is_dead(ctx, x)):
            continue
        if improving is None:
            improving = loss_improving(ctx)
        whole = h.zero_fraction >= th.dead_layer_whole_fraction  # type: ignore[operator]
        batches = _batches(ctx, name, th.dead_layer_epochs)
        few = batches is not None and batches < th.dead_layer_min_batches
        severity = "info" if improving or few else ("critical" if whole else "warning")
        verdict = ("the loss still improves, so the rest of the network carries the learning" if improving else
                   f"judged on {batches} sampled batches only: too few to call a unit dead" if few else
                   "and the loss has stopped improving" + (": no signal passes this layer" if whole else ""))
        out.append(Finding(
            title="Dead layer" if whole else "Dead units",
            description=f"{h.zero_fraction * 100:.0f} % of the units of {name} output exactly zero on every batch "  # type: ignore[operator]
                        f"(limit {th.dead_layer_zero_fraction * 100:g} %, {th.dead_layer_epochs} epochs running), "
                        f"{verdict}.",
            suggestion=f"Re-initialise and use a leaky activation: `nn.init.kaiming_normal_(model.{attribute_path(name)}.weight, "
                       "nonlinearity='relu')`, `nn.LeakyReLU(0.01)` instead of `nn.ReLU()`; lower the learning rate.",
            metric_key="zero_fraction", metric_value=h.zero_fraction, layer=name, severity=severity,
            evidence={"zero_fraction": h.zero_fraction, "sampled_batches": batches, "loss_improving": improving},
            thresholds=th.pick("dead_layer_zero_fraction", "dead_layer_epochs", "dead_layer_min_batches",
                               "dead_layer_whole_fraction",
                               "loss_plateau_window", "loss_plateau_min_improvement_pct"),
        ))
    return out


def _vanishing(ctx: Context, h: LayerHealthRecord) -> bool:
    return finite(h.gradient_norm_mean) and h.gradient_norm_mean < ctx.th.vanishing_gradient_norm  # type: ignore[operator]


@rule("vanishing_gradients", severity="warning", category="sustainability")
def vanishing_gradients(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if not cur.layers:
        return None
    th = ctx.th
    # the gradient flows from the output back: a dead layer blocks it for itself and every layer before it
    last_dead = max((i for i, h in enumerate(cur.layers.values()) if _is_dead(ctx, h)), default=-1)
    return [Finding(
        title="Vanishing gradients",
        description=f"Layer {name} has a mean gradient norm of {h.gradient_norm_mean:.3g} (below "
                    f"{th.vanishing_gradient_norm:g} for {th.vanishing_gradient_epochs} epochs): it barely learns.",
        suggestion="Add residual connections (`return x + self.block(x)`) and normalisation (`nn.LayerNorm`), use "
                   "`nn.init.kaiming_normal_` and GELU/ReLU instead of sigmoid/tanh.",
        metric_key="gradient_norm_mean", metric_value=h.gradient_norm_mean, layer=name,
        thresholds=th.pick("vanishing_gradient_norm", "vanishing_gradient_epochs"),
    ) for i, (name, h) in enumerate(cur.layers.items())
        if i > last_dead  # a dead layer at or after it explains it: dead_layers' issue, not a second one
        and _vanishing(ctx, h) and _held(ctx, name, th.vanishing_gradient_epochs, lambda x: _vanishing(ctx, x))]


_WEIGHTED = ("linear", "convolution", "recurrent", "attention")


@rule("depth_gradient_ratio", severity="warning", category="sustainability")
def depth_gradient_ratio(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    arch = ctx.state.architecture
    # Only layers that transform their input through weights compare: an embedding's gradient touches only the
    # rows of the batch's tokens, a normalisation's scale or a learned positional table (a parameter of the model
    # itself) have small gradients by nature, not because depth shrank them (a healthy tiny transformer read 125x
    # from its positional table to its head).
    compute = ({n.id for n in arch.ordered_nodes() if n.kind in _WEIGHTED and n.id != n.type}  # (the model itself,
               if arch is not None else None)                  # named by its class, holds only its own parameters)
    norms = [(name, h.gradient_norm_mean) for name, h in cur.layers.items()
             if finite(h.gradient_norm_mean) and h.gradient_norm_mean > 0  # type: ignore[operator]
             and (compute is None or name in compute)]
    if not cur.layers:
        return None
    if len(norms) < 2:
        return []
    (first, g_first), (last, g_last) = norms[0], norms[-1]
    ratio = g_last / g_first  # type: ignore[operator]
    limit = ctx.th.depth_gradient_ratio
    if ratio <= limit:
        return []
    return [Finding(
        title="Gradients shrink with depth",
        description=f"The last layer {last} gets {ratio:.0f}x the gradient norm of the first layer {first} "
                    f"({g_last:.3g} vs {g_first:.3g}; limit {limit:g}x): early layers learn far more slowly.",
        suggestion="Add skip connections and normalisation between blocks, or use layer-wise learning rates "
                   "(a larger LR for the early layers' param group).",
        metric_key="gradient_norm_ratio", metric_value=ratio, layer=first,
        thresholds=ctx.th.pick("depth_gradient_ratio"),
    )]


def _collapsed(ctx: Context, h: LayerHealthRecord) -> bool:
    return finite(h.activation_std) and h.activation_std < ctx.th.activation_collapse_std  # type: ignore[operator]


def _frozen(ctx: Context, h: LayerHealthRecord) -> bool:
    v, std = h.activation_var_of_means, h.activation_std
    if not finite(v) or v >= ctx.th.frozen_output_var:  # type: ignore[operator]
        return False
    return not finite(std) or v <= ctx.th.frozen_output_rel_var * std * std  # type: ignore[operator]


@rule("frozen_output_layers", severity="warning", category="sustainability")
def frozen_output_layers(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if not cur.layers:
        return None
    th = ctx.th
    return [Finding(
        title="Frozen layer output",
        description=f"The batch-mean output of {name} varies by {h.activation_var_of_means:.3g} (below "
                    f"{th.frozen_output_var:g}, and below {th.frozen_output_rel_var:g} of its activation variance, "
                    f"for {th.frozen_output_epochs} epochs): it answers the same whatever the input.",
        suggestion=f"Check that `{name}` receives the input you expect (not a constant or a detached tensor) and "
                   "that its weights are updated (`requires_grad=True`, included in the optimizer).",
        metric_key="activation_var_of_means", metric_value=h.activation_var_of_means, layer=name,
        thresholds=th.pick("frozen_output_var", "frozen_output_rel_var", "frozen_output_epochs"),
    ) for name, h in cur.layers.items()
        if _frozen(ctx, h) and _held(ctx, name, th.frozen_output_epochs, lambda x: _frozen(ctx, x))
        and not _is_dead(ctx, h) and not _collapsed(ctx, h)]  # one root cause, one issue


@rule("activation_collapse", severity="warning", category="sustainability")
def activation_collapse(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if not cur.layers:
        return None
    th = ctx.th
    return [Finding(
        title="Activation collapse",
        description=f"The activations of {name} have std {h.activation_std:.3g} (below "
                    f"{th.activation_collapse_std:g} for {th.activation_collapse_epochs} epochs): every input maps "
                    "to nearly the same output.",
        suggestion="Add normalisation before the layer (`nn.LayerNorm(features)` or `nn.BatchNorm1d(features)`), "
                   "lower the learning rate, and check for an over-strong weight decay.",
        metric_key="activation_std", metric_value=h.activation_std, layer=name,
        thresholds=th.pick("activation_collapse_std", "activation_collapse_epochs"),
    ) for name, h in cur.layers.items()
        if _collapsed(ctx, h) and not _is_dead(ctx, h)
        and _held(ctx, name, th.activation_collapse_epochs, lambda x: _collapsed(ctx, x))]


@rule("redundant_layers", severity="info", category="sustainability")
def redundant_layers(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if not cur.correlations:
        return None
    limit = ctx.th.redundant_correlation
    return [Finding(
        title="Redundant layers",
        description=f"Layers {c.layer_a} and {c.layer_b} produce nearly the same activations (correlation "
                    f"{c.correlation:.3f} > {limit:g}).",
        suggestion=f"Try removing `{c.layer_b}` (or merging the two) and compare validation loss; fewer layers "
                   "train faster and use less energy.",
        metric_key="correlation", metric_value=c.correlation, layer=c.layer_b, key=f"{c.layer_a}|{c.layer_b}",
        thresholds=ctx.th.pick("redundant_correlation"),
    ) for c in cur.correlations if finite(c.correlation) and c.correlation > limit]


@rule("saturated_activation", severity="warning", category="sustainability")
def saturated_activation(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if not cur.layers:
        return None
    limit = ctx.th.saturated_fraction
    return [Finding(
        title="Saturated activations",
        description=f"{h.saturated_fraction * 100:.0f} % of the units of {name} sit in the flat part of their "  # type: ignore[operator]
                    f"activation (limit {limit * 100:g} %): their gradients vanish.",
        suggestion="Normalise the pre-activations (`nn.LayerNorm`), scale the initialisation down "
                   "(`nn.init.xavier_uniform_`), or use ReLU/GELU instead of tanh/sigmoid.",
        metric_key="saturated_fraction", metric_value=h.saturated_fraction, layer=name,
        thresholds=ctx.th.pick("saturated_fraction"),
    ) for name, h in cur.layers.items()
        if finite(h.saturated_fraction) and h.saturated_fraction > limit]  # type: ignore[operator]
