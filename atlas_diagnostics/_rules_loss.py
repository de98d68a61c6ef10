"""Loss and optimisation checks: nan_loss, loss_explosion, loss_divergence, loss_plateau, loss_at_chance,
overfitting, high_loss_variance, gradient_instability, exploding_gradients, data_leakage, frozen_backbone (the
learning-rate checks, lr_too_high and lr_too_low: `_rules_lr.py`).

Look-alikes and what tells them apart (each tested in tests/diagnostics):

- loss_explosion vs gradient_instability: a *level* (the trimmed mean of the last steps' losses) far above its best
  is an explosion; one batch far above the epoch mean is a spike. Critical only while the level is at or above where
  the run started and has not come back down (ARCHITECTURE.md: "exploded and did not recover").
- overfitting vs loss_divergence: overfitting needs the training loss falling or flat-low while validation rises;
  a training loss that rises with it is divergence (too high a learning rate), never overfitting.
- loss_at_chance vs loss_plateau / the learning-rate checks: a plateau at ln(classes) with chance accuracy means the
  model predicts the class prior whatever the input: labels, inputs or the loss are wrong, not the learning rate.
- data_leakage vs an easy task: a validation loss below the training loss, or a perfect first epoch, is what easy
  data, dropout and the epoch mean's lag produce too: a hint (info), never a warning.
- frozen_backbone vs loss_at_chance: nearly every parameter has ``requires_grad=False`` (the facts' trainable count
  against the architecture's total), the frozen weights are still inside their default initialisation bound, and
  the loss stays near ln(classes): a "freeze the pretrained backbone" block with nothing pretrained loaded (random
  features). A frozen backbone whose pretrained weights were loaded is quiet however slowly its head learns."""

from __future__ import annotations

import math

from ._issue import Finding
from ._records import EpochRecord
from ._rules_bugs import _fact, _framework, _num, output_width
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


def _explosion(ctx: Context, level: float, best: float, initial: float, *, unit: str, where: str,
               best_where: str, step: int | None, noise: float = 0.0) -> list[Finding]:
    th = ctx.th
    limit = best * th.loss_explosion_ratio * math.exp(th.loss_explosion_noise_sigmas * noise)
    if not (best > 0 and level > limit and level - best >= th.loss_explosion_min_rise_pct * abs(initial)):
        return []
    lost = level >= initial
    state = (f"at or above the {initial:.4g} the run started from: everything it learned is lost and it has not "
             "recovered" if lost else f"still below the {initial:.4g} the run started from; it may yet recover")
    return [Finding(
        title="Loss explosion",
        description=f"The training loss ({unit}) rose to {level:.4g} {where}, {level / best:.1f}x its best of "
                    f"{best:.4g} ({best_where}), {state}.",
        suggestion=f"Lower the learning rate (e.g. 10x) and add gradient clipping: `{CLIP}`. With a manual loop, "
                   "check that `optimizer.zero_grad()` runs before every `loss.backward()`: without it each step "
                   "applies the sum of all gradients so far.",
        metric_key="loss_level" if step is not None else "train_mean", metric_value=level, step=step,
        severity="critical" if lost else "warning",
        thresholds=th.pick("loss_explosion_ratio", "loss_explosion_min_rise_pct", "loss_explosion_noise_sigmas",
                           "loss_level_steps", "loss_level_trim_pct"),
    )]


@rule("loss_explosion", severity="critical", category="loss", on=("step", "epoch"))
def loss_explosion(ctx: Context) -> list[Finding] | None:
    """The loss level far above its best, from the step series (so an explosion inside an epoch is seen inside it)
    or, without steps, from the epoch means. Raised on steps; each epoch's end says whether it lasted (the issue
    stays active) or the loss came back under the ratio (it clears, and stays as history)."""
    lv = ctx.state.loss_level
    unit = f"trimmed mean of the last {ctx.th.loss_level_steps} step losses"
    if ctx.trigger == "step":
        s = ctx.step
        assert s is not None
        if s.rank != 0 or lv.step != s.step or lv.level is None:
            return None
        found = _explosion(ctx, lv.level, lv.best, lv.initial, unit=unit,  # type: ignore[arg-type]
                           where=f"at step {s.step} (epoch {s.epoch})", best_where=f"step {lv.best_step}",
                           step=s.step, noise=lv.noise)
        return found or None  # a step raises; only an epoch's end clears
    rec = ctx.epoch
    assert rec is not None
    if lv.level is not None and lv.epoch == rec.epoch:  # the step series judges where the loss is now
        return _explosion(ctx, lv.level, lv.best, lv.initial, unit=unit,  # type: ignore[arg-type]
                          where=f"at step {lv.step} (epoch {rec.epoch})", best_where=f"step {lv.best_step}",
                          step=lv.step, noise=lv.noise)
    st = ctx.state
    if not finite(rec.train_mean) or st.lowest_train is None or st.start_loss is None:
        return []
    return _explosion(ctx, float(rec.train_mean), st.lowest_train, st.start_loss,  # type: ignore[arg-type]
                      unit="epoch mean", where=f"in epoch {rec.epoch}", best_where=f"epoch {st.lowest_train_epoch}",
                      step=None)


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
    if spread >= limit or at_chance(ctx, ctx.epoch) is not None:  # type: ignore[arg-type]
        return []  # a plateau at the chance level is loss_at_chance's: not a learning-rate matter
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


def classes(ctx: Context) -> int | None:
    """The number of classes a classifier would have: the width of the model's last Linear layer (None without
    one, or below 2). The architecture alone cannot tell a 10-way classifier from a 10-value regression: callers
    also need an accuracy metric (:func:`at_chance`)."""
    arch = ctx.state.architecture
    if arch is None:
        return None
    last = next((n for n in reversed(arch.ordered_nodes()) if n.kind == "linear" and n.out_features), None)
    if last is None or last.out_features is None or last.out_features < 2:
        return None
    return last.out_features


def at_chance(ctx: Context, rec: EpochRecord) -> tuple[int, float, float, float] | None:
    """``(classes, ln(classes), loss, accuracy)`` when the epoch's loss sits at the chance level ln(classes) (within
    ``chance_loss_tolerance_pct``; the validation loss if logged, else the training loss) and its validation
    accuracy does not beat 1/classes by more than ``chance_accuracy_margin``; else None."""
    k = classes(ctx)
    acc = rec.val_accuracy
    if k is None or acc is None or not math.isfinite(acc):
        return None
    loss = rec.val_loss if finite(rec.val_loss) else rec.train_mean
    if not finite(loss):
        return None
    chance, value, th = math.log(k), float(loss), ctx.th  # type: ignore[arg-type]
    if abs(value - chance) > th.chance_loss_tolerance_pct * chance or acc > 1 / k + th.chance_accuracy_margin:
        return None
    return k, chance, value, acc


@rule("loss_at_chance", severity="warning", category="loss")
def loss_at_chance(ctx: Context) -> list[Finding]:
    th, st = ctx.th, ctx.state
    n = th.chance_epochs
    recent = st.recent(n)
    if n < 1 or len(recent) < n:
        return []
    found = [at_chance(ctx, r) for r in recent]
    if any(f is None for f in found):
        return _accuracy_at_chance(ctx, recent)
    ratios = [h.update_ratio for h in recent[-1].layers.values() if finite(h.update_ratio)]
    if ratios and max(ratios) < th.lr_too_low_update_ratio:  # type: ignore[type-var]
        return []  # the weights barely move: a learning-rate (lr_too_low) or optimizer matter after all
    k, chance, loss, acc = found[-1]  # type: ignore[misc]
    return [Finding(
        title="Loss at the chance level",
        description=f"For {n} epochs the loss has sat at ln({k}) = {chance:.4g} (now {loss:.4g}) with validation "
                    f"accuracy {acc:.3f} against a chance of {1 / k:.3f}"
                    + (", while the weights move" if ratios else "")
                    + ": the model predicts the class prior whatever the input. A learning rate that is merely off "
                    "rarely holds a loss exactly there; most often the signal from the inputs does not reach the "
                    "output.",
        suggestion="Check that labels stay paired with their inputs (shuffle them together: `perm = "
                   "torch.randperm(n); x, y = x[perm], y[perm]`), that the model's output feeds "
                   "`cross_entropy` as raw logits (no softmax before it), that the optimizer holds "
                   "`model.parameters()`, and that no layer is dead or starved of gradient (dead_layers, "
                   "vanishing_gradients)" + (
                       f"; the training loss jumps from batch to batch (std {recent[-1].train_std:.3g}): also try a "
                       "10x lower learning rate" if _noisy(recent[-1]) else "") + ".",
        metric_key="val_loss" if finite(recent[-1].val_loss) else "train_mean", metric_value=loss,
        evidence={"classes": k, "chance_loss": chance, "loss": loss, "val_accuracy": acc, "chance_accuracy": 1 / k},
        thresholds=th.pick("chance_loss_tolerance_pct", "chance_accuracy_margin", "chance_epochs"),
    )]


def _noisy(rec: EpochRecord) -> bool:
    """The epoch's batch losses spread more than 20 % of their mean."""
    return finite(rec.train_std) and finite(rec.train_mean) and rec.train_mean > 0 \
        and rec.train_std > 0.2 * rec.train_mean  # type: ignore[operator]


def _accuracy_at_chance(ctx: Context, recent: list[EpochRecord]) -> list[Finding]:
    """Validation accuracy at chance for ``chance_epochs`` epochs while the training loss has fallen to under half
    of where it started: the loss optimises something that is not the task (MSE on class indices, the wrong
    target column, an accuracy computed on other outputs)."""
    th, st = ctx.th, ctx.state
    k = classes(ctx) or output_width(ctx)
    accs = [r.val_accuracy for r in recent]
    if k is None or any(a is None or not math.isfinite(a) or a > 1 / k + th.chance_accuracy_margin for a in accs):
        return []
    cur, start = recent[-1].train_mean, st.start_loss
    if not finite(cur) or start is None or start <= 0 or cur > 0.5 * start:  # type: ignore[operator]
        return []
    return [Finding(
        title="Accuracy at chance while the loss falls",
        description=f"The training loss fell from {start:.4g} to {cur:.4g}, yet validation accuracy has stayed at "
                    f"{accs[-1]:.3f} for {len(accs)} epochs, against a chance of {1 / k:.3f} ({k} classes): what the "
                    "loss rewards is not what the accuracy measures.",
        suggestion="Check that the loss fits the labels: class indices want `F.cross_entropy(logits, y)` (not "
                   "`F.mse_loss(logits, y.float())`); that the target is the right column; and that the accuracy "
                   "is computed from the same outputs (`logits.argmax(dim=1) == y`).",
        metric_key="val_accuracy", metric_value=accs[-1], key="accuracy_only",
        evidence={"classes": k, "train_loss": cur, "start_loss": start, "val_accuracy": accs[-1]},
        thresholds=th.pick("chance_accuracy_margin", "chance_epochs"),
    )]


def _wobble(values: list[float]) -> float:
    """A robust standard deviation of a curve's epoch-to-epoch noise: 1.4826 x the median absolute second
    difference / sqrt(6) (a second difference of white noise has 6x its variance); 0 with fewer than 3 points. Early
    in a run the curve's own bend counts as wobble: it errs towards silence."""
    d2 = [abs(c - 2 * b + a) for a, b, c in zip(values, values[1:], values[2:])]
    return 1.4826 * (median(d2) or 0.0) / math.sqrt(6.0)


@rule("overfitting", severity="warning", category="loss")
def overfitting(ctx: Context) -> list[Finding]:
    st, th = ctx.state, ctx.th
    cur = ctx.epoch
    assert cur is not None
    if not finite(cur.val_loss) or st.best_val is None or st.best_val_epoch is None:
        return []
    best, best_epoch, val = st.best_val, st.best_val_epoch, float(cur.val_loss)  # type: ignore[arg-type]
    since = cur.epoch - best_epoch
    vals = [(r.epoch, float(r.val_loss)) for r in st.recent(max(since, th.overfitting_window + 1))  # type: ignore[arg-type]
            if finite(r.val_loss)]
    if since < max(1, th.overfitting_epochs) or any(v < best for e, v in vals if e > best_epoch):
        return []  # validation has not stayed above its best for long enough: one bad epoch is noise
    need = max(th.overfitting_min_rise_pct * abs(best),
               th.overfitting_noise_sigmas * _wobble([v for _, v in vals][-(th.overfitting_window + 1):]))
    if val - best < need:
        return []
    trains = [float(r.train_mean) for r in st.recent(since + 1)  # type: ignore[arg-type]
              if r.epoch >= best_epoch and finite(r.train_mean)]
    if not trains or not finite(cur.train_mean) \
            or cur.train_mean > min(trains) * (1 + th.overfitting_train_tolerance_pct):  # type: ignore[operator]
        return []  # the training loss rose with validation: divergence (a too high learning rate), not overfitting
    return [Finding(
        title="Overfitting",
        description=f"Validation loss has stayed above its best of {best:.4g} (epoch {best_epoch}) for {since} "
                    f"epochs and is now {val:.4g} (+{(val - best) / abs(best) * 100:.0f} %, beyond the "
                    f"{need:.3g} its own epoch-to-epoch wobble and the {th.overfitting_min_rise_pct * 100:g} % floor "
                    f"allow), while the training loss kept falling or stayed low ({cur.train_mean:.4g}).",
        suggestion="Regularise: dropout (`nn.Dropout(0.3)`), weight decay (`torch.optim.AdamW(params, lr=lr, "
                   "weight_decay=0.01)`), data augmentation, or early stopping on val_loss.",
        metric_key="val_loss", metric_value=val,
        thresholds=th.pick("overfitting_epochs", "overfitting_window", "overfitting_min_rise_pct",
                           "overfitting_noise_sigmas", "overfitting_train_tolerance_pct"),
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


@rule("exploding_gradients", severity="critical", category="loss", on=("step", "epoch"))
def exploding_gradients(ctx: Context) -> list[Finding] | None:
    """Critical for what overflows: a non-finite gradient norm (AMP-skipped steps and accumulation micro-batches
    never count) or one ``exploding_grad_ratio`` times the run's own recent median. A norm above the absolute
    ``exploding_grad_norm`` that is not a spike against the run's own history is a warning: unnormalised targets
    give steady large gradients that train."""
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
        why, critical = _explodes(g, base, th.exploding_grad_norm, th.exploding_grad_ratio)
        if why is None:
            return None
        return [Finding(title="Exploding gradients", description=f"Step {s.step} (epoch {s.epoch}): {why}.",
                        suggestion=suggestion, metric_key="grad_norm", metric_value=g, step=s.step,
                        thresholds=limits, severity=None if critical else "warning")]
    rec = ctx.epoch
    assert rec is not None
    fired = ctx.state.fired_in_epoch(rec.epoch, "exploding_gradients")
    if fired:
        return None  # the step-level issue names the first spike; the epoch's mean norm is the same fault (as nan_loss)
    why, critical = None, False
    if rec.grad_norm is not None and not (not math.isfinite(rec.grad_norm) and rec.amp_skipped_steps):
        k = rec.grad_accumulation
        previous = [float(r.grad_norm) / r.grad_accumulation  # type: ignore[arg-type]
                    for r in ctx.state.recent(len(ctx.state.window))[:-1] if finite(r.grad_norm)]
        base = median(previous) if len(previous) >= 3 else None
        why, critical = _explodes(rec.grad_norm / k, base, th.exploding_grad_norm, th.exploding_grad_ratio)
    if why is None:
        return _weight_jump(ctx, rec, suggestion)
    return [Finding(title="Exploding gradients", description=f"Epoch {rec.epoch}: {why}.", suggestion=suggestion,
                    metric_key="grad_norm", metric_value=rec.grad_norm, thresholds=limits,
                    severity=None if critical else "warning")]


def _weight_jump(ctx: Context, rec: EpochRecord, suggestion: str) -> list[Finding]:
    """A sampled optimizer step that moved a layer's weights by ``weight_jump_ratio`` of their norm or more: the
    spike the sampled gradient norm can miss (a warning; from epoch 1 on, when a zero- or tiny-initialised layer
    no longer doubles in a step)."""
    th = ctx.th
    if rec.epoch < 1:
        return []
    jumps = [(float(h.update_ratio_max), name) for name, h in rec.layers.items()  # type: ignore[arg-type]
             if finite(h.update_ratio_max) and h.update_ratio_max >= th.weight_jump_ratio]  # type: ignore[operator]
    if not jumps:
        return []
    ratio, name = max(jumps)
    return [Finding(
        title="Weights jumped in one step",
        description=f"Epoch {rec.epoch}: one optimizer step changed the weights of {name} by {ratio:.3g}x their "
                    f"norm (at least {th.weight_jump_ratio:g}x is a jump; healthy steps move them ~1e-3x): a "
                    "gradient spike between the sampled gradient norms.",
        suggestion=suggestion, metric_key="update_ratio_max", metric_value=ratio, layer=name, key="weight_jump",
        severity="warning", evidence={"update_ratio_max": ratio, "layer": name},
        thresholds=th.pick("weight_jump_ratio"),
    )]


def _explodes(g: float, base: float | None, limit: float, ratio: float) -> tuple[str | None, bool]:
    """Why ``g`` explodes and whether that is critical (non-finite, or a spike against the run's own median)."""
    if not math.isfinite(g):
        return f"gradient norm is {g!r}", True
    if base is not None and base > 0 and g > ratio * base:
        return f"gradient norm {g:.4g} is {g / base:.0f}x the recent median {base:.4g}", True
    if g > limit:
        return f"gradient norm {g:.4g} above {limit:g}, not a spike against this run's own recent norms", False
    return None, False


@rule("data_leakage", severity="info", category="loss")
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
                        f"for {n} epochs (ratio now {ratios[-1]:.2f}). A hint, not evidence: dropout, augmentation "
                        "and an epoch mean that lags a fast-learning model do this too.",
            suggestion=suggestion, metric_key="val_loss/train_mean", metric_value=ratios[-1], key="loss_ratio",
            thresholds=th.pick("data_leakage_val_train_ratio", "data_leakage_epochs"),
        ))
    acc = st.first_val_accuracy
    if acc is not None and acc >= th.data_leakage_accuracy:
        out.append(Finding(
            title="Possible data leakage",
            description=f"Validation accuracy was {acc:.4f} already in epoch {st.first_val_accuracy_epoch}. A hint, "
                        "not evidence: an easy task does this too.",
            suggestion=suggestion, metric_key="val_accuracy", metric_value=acc, key="first_epoch_accuracy",
            thresholds=th.pick("data_leakage_accuracy"),
        ))
    return out


@rule("frozen_backbone", severity="warning", category="loss")
def frozen_backbone(ctx: Context) -> list[Finding]:
    """Most of the model frozen (the facts' trainable parameters against the architecture's total), the frozen
    weights still inside PyTorch's default initialisation bound (``frozen_at_init_numel``: every value within
    1/sqrt(fan_in), which training or pretraining leaves), and the loss near ln(classes) for ``frozen_epochs``
    epochs: only a small head learns, on random features. Needs a classifier (its last Linear's width) to know
    where chance is; a regression is not judged. A head on loaded pretrained weights (LoRA, linear probing) is
    told apart by those weights, not by how fast its loss falls."""
    th, st, rec = ctx.th, ctx.state, ctx.epoch
    assert rec is not None
    arch, p = st.architecture, _fact(ctx, "parameters")
    trainable, total = _num(p, "trainable_numel"), float(arch.total_parameters or 0) if arch is not None else 0.0
    checked, at_init = _num(p, "frozen_checked_numel"), _num(p, "frozen_at_init_numel")
    k = classes(ctx)
    if trainable is None or total < th.frozen_min_parameters or k is None or st.epochs_seen < th.frozen_epochs \
            or not checked or at_init is None or at_init / checked < th.frozen_share:
        return []
    frozen = 1.0 - trainable / total
    chance = math.log(k)
    losses = [r.val_loss if finite(r.val_loss) else r.train_mean for r in st.recent(th.frozen_epochs)]
    if frozen < th.frozen_share or not all(finite(v) and v >= th.frozen_chance_share * chance  # type: ignore[operator]
                                           for v in losses):
        return []
    loss = float(losses[-1])  # type: ignore[arg-type]
    fw = _framework(ctx)
    return [Finding(
        title="Most of the model is frozen and the loss stays near chance",
        description=f"{frozen * 100:.1f} % of the model's {int(total):,} parameters have `requires_grad=False` "
                    f"(only {int(trainable):,} train), and after {st.epochs_seen} epochs the loss is {loss:.4g}, "
                    f"{loss / chance * 100:.0f} % of the chance level ln({k}) = {chance:.4g}. The frozen weights "
                    f"are still where PyTorch's default initialisation put them ({at_init / checked * 100:.0f} % "
                    "of those checked lie within 1/sqrt(fan_in)): no pretrained weights were loaded, and the head "
                    "learns on random features.",
        suggestion="If the frozen part is meant to be pretrained, load its weights before freezing "
                   "(`backbone.load_state_dict(torch.load(path))` or the library's `from_pretrained`), and check "
                   "the keys matched (`load_state_dict` returns the missing ones); otherwise do not freeze it: "
                   "remove the `requires_grad = False` loop" + (" (or unfreeze it in `configure_optimizers`)"
                                                                 if fw == "lightning" else "") + ".",
        metric_key="frozen_share", metric_value=frozen,
        evidence={"frozen_share": frozen, "trainable_parameters": int(trainable), "total_parameters": int(total),
                  "frozen_at_init_share": at_init / checked, "loss": loss, "chance_loss": chance, "classes": k},
        thresholds=th.pick("frozen_share", "frozen_chance_share", "frozen_epochs", "frozen_min_parameters"),
    )]
