"""Loss and optimisation checks: nan_loss, loss_explosion, loss_divergence, loss_plateau, overfitting,
high_loss_variance, gradient_instability, lr_too_high, lr_too_low, exploding_gradients, data_leakage."""

from __future__ import annotations

import math

from ._issue import Finding
from ._registry import rule
from ._state import Context, finite, median

CLIP = "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # after loss.backward()"


def _losses(ctx: Context, n: int) -> list[float] | None:
    """The last ``n`` training losses, or ``None`` if fewer are known or any is not finite."""
    recent = ctx.state.recent(n)
    if len(recent) < n or not all(finite(r.train_mean) for r in recent):
        return None
    return [float(r.train_mean) for r in recent]  # type: ignore[arg-type]


def _spread_judgeable(ctx: Context, loss: float) -> bool:
    first = ctx.state.first_loss
    if not (ctx.state.epochs_seen > 1 and first is not None and loss >= first * ctx.th.loss_spread_min_loss_pct):
        return False
    prev = ctx.state.previous()
    if prev is not None and finite(prev.train_mean) and prev.train_mean > 0:  # type: ignore[operator]
        return (prev.train_mean - loss) / prev.train_mean < ctx.th.loss_spread_max_fall_pct  # type: ignore[operator]
    return True


@rule("nan_loss", severity="critical", category="loss", on=("step", "epoch"))
def nan_loss(ctx: Context) -> list[Finding] | None:
    suggestion = (
        "Stop and find the first non-finite value: lower the learning rate, add gradient clipping "
        f"(`{CLIP}`), check inputs with `torch.isfinite(x).all()`, and for fp16 use `torch.autocast` with a "
        "`GradScaler` (or bf16)."
    )
    if ctx.trigger == "step":
        s = ctx.step
        assert s is not None
        if s.amp_skipped or s.accumulating or s.loss is None or math.isfinite(s.loss):
            return None
        return [Finding(
            title="Non-finite loss",
            description=f"Loss was {s.loss!r} at step {s.step} (epoch {s.epoch}, rank {s.rank}).",
            suggestion=suggestion, metric_key="loss", metric_value=s.loss, step=s.step,
        )]
    rec = ctx.epoch
    assert rec is not None
    bad_steps = ctx.state.fired_in_epoch(rec.epoch, "nan_loss")
    if bad_steps:
        # The step-level issue already names the first bad batch; the epoch's NaN mean is the same fault. On real
        # runs (tests/faults, "nan_batch") replacing it with an epoch-level finding lost the step of the first NaN.
        return None
    mean_bad = rec.train_mean is not None and not math.isfinite(rec.train_mean)
    if mean_bad and rec.amp_skipped_steps and ctx.state.steps_seen.get(rec.epoch):
        mean_bad = False  # only AMP-skipped steps were non-finite: the scaler handled them
    if not mean_bad:
        return []
    return [Finding(
        title="Non-finite loss",
        description=f"Epoch {rec.epoch}: mean training loss {rec.train_mean!r}; {bad_steps} step(s) with a NaN/inf "
                    "loss "
                    f"(AMP-skipped steps not counted: {rec.amp_skipped_steps}).",
        suggestion=suggestion, metric_key="train_mean", metric_value=rec.train_mean,
    )]


@rule("loss_explosion", severity="critical", category="loss")
def loss_explosion(ctx: Context) -> list[Finding]:
    losses = _losses(ctx, 2)
    if losses is None:
        return []
    prev, cur = losses
    ratio = ctx.th.loss_explosion_ratio
    if prev <= 0 or cur / prev <= ratio:
        return []
    return [Finding(
        title="Loss explosion",
        description=f"Training loss went from {prev:.4g} to {cur:.4g} ({cur / prev:.1f}x) in one epoch "
                    f"(limit {ratio:g}x).",
        suggestion=f"Lower the learning rate (e.g. 10x) and add gradient clipping: `{CLIP}`.",
        metric_key="train_mean", metric_value=cur, thresholds=ctx.th.pick("loss_explosion_ratio"),
    )]


@rule("loss_divergence", severity="warning", category="loss")
def loss_divergence(ctx: Context) -> list[Finding]:
    n = ctx.th.loss_divergence_epochs
    losses = _losses(ctx, n + 1)
    if losses is None or n < 1:
        return []
    rise = ctx.th.loss_divergence_min_rise_pct
    if not all(b > a + abs(a) * rise for a, b in zip(losses, losses[1:])):
        return []
    first = ctx.state.first_loss
    if first is not None and first > 0 and losses[-1] - losses[0] < first * ctx.th.loss_divergence_min_total_pct:
        return []
    return [Finding(
        title="Loss divergence",
        description=f"Training loss rose {n} epochs in a row: " + " -> ".join(f"{v:.4g}" for v in losses) + ".",
        suggestion="Lower the learning rate or add a scheduler, e.g. "
                   "`torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)`; check the data for NaNs.",
        metric_key="train_mean", metric_value=losses[-1],
        thresholds=ctx.th.pick("loss_divergence_epochs", "loss_divergence_min_rise_pct",
                               "loss_divergence_min_total_pct"),
    )]


@rule("loss_plateau", severity="warning", category="loss")
def loss_plateau(ctx: Context) -> list[Finding]:
    w = ctx.th.loss_plateau_window
    losses = _losses(ctx, w + 1)
    if losses is None or w < 1 or losses[0] <= 1e-6:
        return []
    change = (losses[0] - losses[-1]) / abs(losses[0])
    spread = (max(losses) - min(losses)) / abs(losses[0])  # a loss that swings is not flat (see lr_too_high)
    limit = ctx.th.loss_plateau_min_improvement_pct
    if spread >= limit:
        return []
    return [Finding(
        title="Loss plateau",
        description=f"Training loss changed {change * 100:+.2f} % over the last {w} epochs "
                    f"({losses[0]:.4g} -> {losses[-1]:.4g}); less than {limit * 100:g} %.",
        suggestion="Reduce the learning rate on plateau: `scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau("
                   "optimizer, mode='min', patience=3)` and call `scheduler.step(val_loss)` each epoch; "
                   "or stop training if the model is good enough.",
        metric_key="train_mean", metric_value=losses[-1],
        thresholds=ctx.th.pick("loss_plateau_window", "loss_plateau_min_improvement_pct"),
    )]


@rule("overfitting", severity="warning", category="loss")
def overfitting(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    recent = st.recent(th.overfitting_window + 1)
    pairs = [(a, b) for a, b in zip(recent, recent[1:])
             if finite(a.val_loss) and finite(b.val_loss) and finite(a.train_mean) and finite(b.train_mean)]
    bad = [b.epoch for a, b in pairs if b.val_loss > a.val_loss and b.train_mean < a.train_mean]  # type: ignore[operator]
    cur = ctx.epoch
    assert cur is not None
    if len(bad) < th.overfitting_epochs or not finite(cur.val_loss) or st.best_val is None \
            or cur.val_loss <= st.best_val * (1 + th.overfitting_min_rise_pct):  # type: ignore[operator]
        return []
    if not (finite(recent[0].train_mean) and finite(cur.train_mean)) or cur.train_mean >= recent[0].train_mean:  # type: ignore[operator]
        return []  # training loss did not fall over the window
    return [Finding(
        title="Overfitting",
        description=f"Validation loss rose while training loss fell in epochs {', '.join(map(str, bad))}; "
                    f"val_loss is {cur.val_loss:.4g} against a best of {st.best_val:.4g} at epoch "
                    f"{st.best_val_epoch}, train loss {cur.train_mean:.4g}.",
        suggestion="Regularise: dropout (`nn.Dropout(0.3)`), weight decay (`torch.optim.AdamW(params, lr=lr, "
                   "weight_decay=0.01)`), data augmentation, or early stopping on val_loss.",
        metric_key="val_loss", metric_value=cur.val_loss,
        thresholds=th.pick("overfitting_epochs", "overfitting_window", "overfitting_min_rise_pct"),
    )]


@rule("high_loss_variance", severity="warning", category="loss")
def high_loss_variance(ctx: Context) -> list[Finding]:
    rec = ctx.epoch
    assert rec is not None
    if not (finite(rec.train_mean) and finite(rec.train_std)) or rec.train_mean <= 0:  # type: ignore[operator]
        return []
    mean, std = float(rec.train_mean), float(rec.train_std)  # type: ignore[arg-type]
    cv = std / mean
    if cv <= ctx.th.high_loss_variance_cv or not _spread_judgeable(ctx, mean):
        return []
    return [Finding(
        title="High loss variance",
        description=f"Epoch {rec.epoch}: batch losses have std {std:.4g} for a mean of {mean:.4g} "
                    f"(std/mean {cv:.2f} > {ctx.th.high_loss_variance_cv:g}).",
        suggestion="Use larger batches (`DataLoader(ds, batch_size=128, shuffle=True)`) or a lower learning rate; "
                   "check for mislabelled or outlier samples.",
        metric_key="train_std/train_mean", metric_value=cv,
        thresholds=ctx.th.pick("high_loss_variance_cv", "loss_spread_min_loss_pct", "loss_spread_max_fall_pct"),
    )]


@rule("gradient_instability", severity="warning", category="loss")
def gradient_instability(ctx: Context) -> list[Finding]:
    rec = ctx.epoch
    assert rec is not None
    if not (finite(rec.train_mean) and finite(rec.train_max)) or rec.train_mean <= 0:  # type: ignore[operator]
        return []
    mean, peak = float(rec.train_mean), float(rec.train_max)  # type: ignore[arg-type]
    ratio = peak / mean
    if ratio <= ctx.th.gradient_instability_ratio or not _spread_judgeable(ctx, mean):
        return []
    return [Finding(
        title="Loss spike within an epoch",
        description=f"Epoch {rec.epoch}: the worst batch loss {peak:.4g} is {ratio:.1f}x the mean {mean:.4g} "
                    f"(limit {ctx.th.gradient_instability_ratio:g}x): a gradient spike.",
        suggestion=f"Add gradient clipping: `{CLIP}`; consider a learning-rate warm-up.",
        metric_key="train_max/train_mean", metric_value=ratio,
        thresholds=ctx.th.pick("gradient_instability_ratio", "loss_spread_min_loss_pct", "loss_spread_max_fall_pct"),
    )]


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
    w = th.lr_oscillation_window
    losses = _losses(ctx, w)
    if losses is None or w < 3:
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


LR_LOW_SUGGESTION = ("Raise the learning rate (try an LR range test), e.g. `torch.optim.Adam(params, lr=1e-3)`, "
                     "or use `torch.optim.lr_scheduler.OneCycleLR`.")


@rule("lr_too_low", severity="info", category="loss")
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


@rule("exploding_gradients", severity="critical", category="loss", on=("step", "epoch"))
def exploding_gradients(ctx: Context) -> list[Finding] | None:
    th = ctx.th
    limits = th.pick("exploding_grad_norm", "exploding_grad_ratio")
    suggestion = f"Clip gradients (`{CLIP}`), lower the learning rate, and check the loss scale under AMP."
    if ctx.trigger == "step":
        s = ctx.step
        assert s is not None
        if s.amp_skipped or s.accumulating or s.grad_norm is None:
            return None
        g = s.grad_norm
        base = median(ctx.state.grad_history) if len(ctx.state.grad_history) >= 10 else None
        why = _explodes(g, base, th.exploding_grad_norm, th.exploding_grad_ratio)
        if why is None:
            return None
        return [Finding(title="Exploding gradients", description=f"Step {s.step} (epoch {s.epoch}): {why}.",
                        suggestion=suggestion, metric_key="grad_norm", metric_value=g, step=s.step,
                        thresholds=limits)]
    rec = ctx.epoch
    assert rec is not None
    fired = ctx.state.fired_in_epoch(rec.epoch, "exploding_gradients")
    if fired:
        return None  # the step-level issue names the first spike; the epoch's mean norm is the same fault (as nan_loss)
    why = None
    if rec.grad_norm is not None and not (not math.isfinite(rec.grad_norm) and rec.amp_skipped_steps):
        k = rec.grad_accumulation
        previous = [float(r.grad_norm) / r.grad_accumulation  # type: ignore[arg-type]
                    for r in ctx.state.recent(len(ctx.state.window))[:-1] if finite(r.grad_norm)]
        base = median(previous) if len(previous) >= 3 else None
        why = _explodes(rec.grad_norm / k, base, th.exploding_grad_norm, th.exploding_grad_ratio)
    if why is None:
        return []
    return [Finding(title="Exploding gradients", description=f"Epoch {rec.epoch}: {why}.", suggestion=suggestion,
                    metric_key="grad_norm", metric_value=rec.grad_norm, thresholds=limits)]


def _explodes(g: float, base: float | None, limit: float, ratio: float) -> str | None:
    if not math.isfinite(g):
        return f"gradient norm is {g!r}"
    if g > limit:
        return f"gradient norm {g:.4g} above {limit:g}"
    if base is not None and base > 0 and g > ratio * base:
        return f"gradient norm {g:.4g} is {g / base:.0f}x the recent median {base:.4g}"
    return None


@rule("data_leakage", severity="warning", category="loss")
def data_leakage(ctx: Context) -> list[Finding]:
    th, st = ctx.th, ctx.state
    out: list[Finding] = []
    n = th.data_leakage_epochs
    recent = st.recent(n)
    ratios = [r.val_loss / r.train_mean for r in recent  # type: ignore[operator]
              if finite(r.val_loss) and finite(r.train_mean) and r.train_mean > 0]  # type: ignore[operator]
    suggestion = ("Check that no sample (or near-duplicate) is in both the training and validation sets, e.g. "
                  "`assert not set(train_ids) & set(val_ids)`, and that the split happens before augmentation "
                  "and before any fitting of normalisation statistics.")
    if n >= 1 and len(ratios) == n and len(recent) == n and max(ratios) < th.data_leakage_val_train_ratio:
        out.append(Finding(
            title="Possible data leakage",
            description=f"Validation loss has been below {th.data_leakage_val_train_ratio:g}x the training loss "
                        f"for {n} epochs (ratio now {ratios[-1]:.2f}).",
            suggestion=suggestion, metric_key="val_loss/train_mean", metric_value=ratios[-1], key="loss_ratio",
            thresholds=th.pick("data_leakage_val_train_ratio", "data_leakage_epochs"),
        ))
    acc = st.first_val_accuracy
    if acc is not None and acc >= th.data_leakage_accuracy:
        out.append(Finding(
            title="Possible data leakage",
            description=f"Validation accuracy was {acc:.4f} already in epoch {st.first_val_accuracy_epoch}.",
            suggestion=suggestion, metric_key="val_accuracy", metric_value=acc, key="first_epoch_accuracy",
            thresholds=th.pick("data_leakage_accuracy"),
        ))
    return out
