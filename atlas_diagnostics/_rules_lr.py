"""Learning-rate checks: lr_too_high and lr_too_low, judged on how far each optimiser step moves the weights (the
per-layer update ratio |dw| / |w| of layer health; healthy runs sit near 1e-3) and on how the loss answers.

Look-alikes: a loss stuck at the chance level with healthy-sized steps is a data or loss bug (loss_at_chance), with
tiny steps a learning rate too low or a collapsed schedule, with steps of a tenth of the weights' norm a learning
rate too high; vanishing gradients still the early layers while the last ones move (not a too-low rate)."""

from __future__ import annotations

from ._issue import Finding
from ._registry import rule
from ._rules_loss import _losses
from ._state import Context, finite, median


def _update_ratios(ctx: Context) -> list[float]:
    """Each layer's mean per-step update ratio |dw| / |w| over the epoch's sampled steps (empty without layer health)."""
    rec = ctx.epoch
    assert rec is not None
    return [float(h.update_ratio) for h in rec.layers.values() if finite(h.update_ratio)]  # type: ignore[arg-type]


def _median_update_ratio(ctx: Context) -> float | None:
    ratios = _update_ratios(ctx)
    return median(ratios) if ratios else None


LR_HIGH_SUGGESTION = ("Lower the learning rate 3-10x, or decay it: "
                      "`torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)`.")


@rule("lr_too_high", severity="warning", category="loss")
def lr_too_high(ctx: Context) -> list[Finding]:
    th = ctx.th
    out: list[Finding] = []
    rec = ctx.epoch
    assert rec is not None
    ratio = _median_update_ratio(ctx)
    if ratio is not None and ratio > th.lr_too_high_update_ratio:
        lr = rec.max_lr
        out.append(Finding(
            title="Learning rate likely too high",
            description=f"Epoch {rec.epoch}: each optimiser step changes the weights by {ratio:.3g}x their norm "
                        f"(median over layers; limit {th.lr_too_high_update_ratio:g}, healthy runs are near 1e-3)"
                        + (f" at learning rate {lr:g}" if lr is not None else "") + ".",
            suggestion=LR_HIGH_SUGGESTION, metric_key="update_ratio", metric_value=ratio, key="update_ratio",
            thresholds=th.pick("lr_too_high_update_ratio"),
        ))
    out += _stalled_with_big_steps(ctx)
    w = th.lr_oscillation_window
    losses = _losses(ctx, w)
    if losses is None or w < 3 or any(f.key == "stalled_update_ratio" for f in out):
        return out
    deltas = [b - a for a, b in zip(losses, losses[1:])]
    changes = sum(1 for a, b in zip(deltas, deltas[1:]) if a * b < 0)
    swing = sum(abs(d) / abs(a) for d, a in zip(deltas, losses) if a) / len(deltas)
    if changes < th.lr_oscillation_sign_changes or swing < th.lr_oscillation_min_swing_pct:
        return out
    lr = rec.max_lr
    lr_text = f" at learning rate {lr:g}" if lr is not None else ""
    out.append(Finding(
        title="Learning rate likely too high",
        description=f"Training loss changed direction {changes} times in the last {w} epochs{lr_text}, "
                    f"swinging {swing * 100:.1f} % per epoch on average.",
        suggestion=LR_HIGH_SUGGESTION, metric_key="lr", metric_value=lr,
        thresholds=th.pick("lr_oscillation_window", "lr_oscillation_sign_changes", "lr_oscillation_min_swing_pct"),
    ))
    return out


def _stalled_with_big_steps(ctx: Context) -> list[Finding]:
    """A layer whose weights change by a tenth of their norm at every step while the loss makes no progress: the
    steps overshoot (a GRU under SGD at lr=1.0 sat at the chance level this way, its head moving 18-30 % per step).
    Shuffled labels or a starved output leave the loss just as stuck, but with healthy-sized steps (~1e-3); a
    learning rate too low or a collapsed schedule, with tiny ones."""
    th = ctx.th
    rec = ctx.epoch
    assert rec is not None
    n = th.lr_too_high_stalled_epochs
    kept = len(ctx.state.window)  # the epochs the state keeps (a bounded window in a long run)
    losses = _losses(ctx, kept) if kept > n else None
    if losses is None:
        return []
    best_before = min(losses[:-n])  # the best before the last n epochs, and whether they beat it
    if best_before <= 0:
        return []
    gain = (best_before - min(losses[-n:])) / best_before
    moving = {name: float(h.update_ratio) for name, h in rec.layers.items() if finite(h.update_ratio)}
    if gain >= th.lr_too_high_stalled_gain_pct or not moving:
        return []
    layer, top = max(moving.items(), key=lambda kv: kv[1])
    if top < th.lr_too_high_stalled_update_ratio:
        return []
    lr = rec.max_lr
    return [Finding(
        title="Learning rate likely too high",
        description=f"The training loss has not improved for {n} epochs (best before them {best_before:.4g}, now "
                    f"{losses[-1]:.4g}) "
                    f"while layer {layer}'s weights change by {top * 100:.1f} % of their norm at each step "
                    f"(healthy runs are near 0.1 %)" + (f" at learning rate {lr:g}" if lr is not None else "")
                    + ": the steps overshoot instead of descending.",
        suggestion=LR_HIGH_SUGGESTION, metric_key="update_ratio", metric_value=top, key="stalled_update_ratio",
        thresholds=th.pick("lr_too_high_stalled_update_ratio", "lr_too_high_stalled_epochs",
                           "lr_too_high_stalled_gain_pct"),
    )]


LR_LOW_SUGGESTION = ("Raise the learning rate (try an LR range test), e.g. `torch.optim.Adam(params, lr=1e-3)`, "
                     "or use `torch.optim.lr_scheduler.OneCycleLR`.")


@rule("lr_too_low", severity="warning", category="loss")
def lr_too_low(ctx: Context) -> list[Finding]:
    th = ctx.th
    rec = ctx.epoch
    assert rec is not None
    lr = rec.max_lr
    prev = ctx.state.previous()
    if prev is not None and prev.max_lr is not None and lr is not None and lr != prev.max_lr:
        return []  # warm-up or annealing: a schedule moves the LR on purpose
    out: list[Finding] = []
    # the fastest layer judges: with a too-low LR every layer barely moves, while with vanishing gradients (a deep
    # sigmoid stack in tests/faults) the early layers are still and the last ones move normally
    ratios = _update_ratios(ctx)
    ratio = max(ratios) if ratios else None
    if ratio is not None and ratio < th.lr_too_low_update_ratio and prev is not None \
            and finite(prev.train_mean) and finite(rec.train_mean) and prev.train_mean > 0:  # type: ignore[operator]
        gain = (prev.train_mean - rec.train_mean) / prev.train_mean  # type: ignore[operator]
        if gain < th.lr_too_low_max_improvement_pct:
            out.append(Finding(
                title="Learning rate likely too low",
                description=f"Epoch {rec.epoch}: each optimiser step changes the weights by at most {ratio:.2g}x "
                            f"their norm (fastest layer; limit {th.lr_too_low_update_ratio:g}, healthy runs are near "
                            f"1e-3) and the loss improved {gain * 100:.2f} % since the previous epoch"
                            + (f" at learning rate {lr:g}" if lr is not None else "") + ".",
                suggestion=LR_LOW_SUGGESTION, metric_key="update_ratio", metric_value=ratio, key="update_ratio",
                thresholds=th.pick("lr_too_low_update_ratio", "lr_too_low_max_improvement_pct"),
            ))
    if lr is None or lr >= th.lr_too_low_value:
        return out
    w = th.lr_too_low_window
    losses = _losses(ctx, w + 1)
    if losses is None or losses[0] <= 0 or not all(b < a for a, b in zip(losses, losses[1:])):
        return out
    gain = (losses[0] - losses[-1]) / losses[0]
    if gain >= th.lr_too_low_max_improvement_pct:
        return out
    out.append(Finding(
        title="Learning rate likely too low",
        description=f"Learning rate {lr:g} and the loss fell steadily but only {gain * 100:.2f} % over {w} epochs.",
        suggestion=LR_LOW_SUGGESTION, metric_key="lr", metric_value=lr,
        thresholds=th.pick("lr_too_low_value", "lr_too_low_window", "lr_too_low_max_improvement_pct"),
    ))
    return out
