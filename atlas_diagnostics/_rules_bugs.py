"""Checks for the programming bugs people actually write, read from the run's facts (how it is set up: optimizer,
scheduler, first batches, outputs, modes; ``atlas_callback/_facts.py`` captures them, ARCHITECTURE.md lists the
keys): missing_zero_grad, double_softmax, optimizer_not_stepping_model, lr_schedule_collapse, unnormalized_inputs,
unshuffled_data, eval_mode_training, batchnorm_tiny_batch, unused_parameters, missing_grad_clipping,
broadcast_loss_shapes, relu_output, rnn_batch_first (and frozen_backbone, in ``_rules_loss``: it judges the loss
against chance).

Each names the likely line of code, in the run's framework. None of them fires without its facts: a run recorded
by a trainer that does not send them (an older client, ``track_facts=False``) is judged by the other checks alone.
What tells each from its look-alikes:

- missing_zero_grad: the gradient that arrives right after an optimizer step finds the previous one still in
  ``.grad`` (a fact, not an inference from the loss). Gradient accumulation clears after its step, so never fires.
- double_softmax: outputs whose rows sum to one, and a loss that never goes below log(1 + (k-1)/e), the lowest
  cross_entropy can reach on probabilities, while the model is accurate. A model that takes ``log`` of its
  probabilities and uses ``nll_loss`` goes below that floor as it learns.
- optimizer_not_stepping_model: none (critical) or only some (warning) of the model's trainable parameters are in
  an optimizer; or (critical) backward delivers a gradient to the watched parameter and `.grad` is empty when the
  optimizer steps: `zero_grad()` between `backward()` and `step()`. A plateau with weights that never move is
  this, not a learning-rate problem; and parameters without a gradient are then not unused_parameters.
- unnormalized_inputs: also inputs that are not numbers: NaN or Inf in the first batches, which make
  the loss NaN whatever the model does (nan_loss is then their symptom).
- lr_schedule_collapse: the LR is below 1/1000 of its start in the first half of the run, or below 1/20 of it with
  the training loss stalled. A cosine or linear decay gets there only at its end; a step decay (x0.1 at a third
  of the run) stays above 1/20 in the first half.
"""

from __future__ import annotations

import math
from typing import Any

from ._issue import Finding
from ._registry import rule
from ._state import Context, finite, median

RECURRENT = ("rnn", "transformer")


def _fact(ctx: Context, key: str) -> Any:
    value = ctx.state.facts.get(key)
    return value if isinstance(value, dict) else None


def _num(d: dict[str, Any] | None, key: str) -> float | None:
    if not d:
        return None
    value = d.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _framework(ctx: Context) -> str:
    return ctx.run.framework or "pytorch"


@rule("missing_zero_grad", severity="warning", category="loss")
def missing_zero_grad(ctx: Context) -> list[Finding]:
    f = _fact(ctx, "grads_not_cleared")
    steps, watched = _num(f, "steps"), _num(f, "watched_steps")
    if not steps or not watched or steps < 2 or steps / watched < ctx.th.uncleared_grad_share:
        return []
    manual = ctx.state.facts.get("manual_optimization")
    fw = _framework(ctx)
    if fw == "lightning" and manual:
        fix = ("In `training_step` with manual optimization: `opt = self.optimizers(); opt.zero_grad(); "
               "self.manual_backward(loss); opt.step()`.")
    elif fw == "lightning":
        fix = ("Something re-adds gradients after Lightning clears them: check `optimizer_zero_grad` overrides and "
               "any `backward()` outside `training_step`.")
    else:
        fix = "Call `optimizer.zero_grad()` once per step: `optimizer.zero_grad(); loss.backward(); optimizer.step()`."
    return [Finding(
        title="Gradients are never cleared",
        description=f"On {int(steps)} of the {int(watched)} optimizer steps watched, the new gradient was added to "
                    f"the previous one still in `.grad` ({f.get('parameter')}): `zero_grad()` is not called between "  # type: ignore[union-attr]
                    "steps, so each step applies the sum of every gradient so far and the loss runs away.",
        suggestion=fix,
        metric_key="uncleared_steps", metric_value=int(steps),
        evidence={"uncleared_steps": int(steps), "watched_steps": int(watched),
                  "manual_optimization": bool(manual) if manual is not None else None},
        thresholds=ctx.th.pick("uncleared_grad_share"),
    )]


def _cleared_before_step(ctx: Context) -> list[Finding]:
    """optimizer_not_stepping_model's other form: the optimizer holds the parameters, but their gradients are
    cleared between backward and step, so the steps change nothing either."""
    f = _fact(ctx, "grads_cleared_before_step")
    steps, watched = _num(f, "steps"), _num(f, "watched_steps")
    if not steps or not watched or steps < 2 or steps / watched < ctx.th.uncleared_grad_share:
        return []
    fw = _framework(ctx)
    if fw == "lightning":
        fix = ("Do not clear gradients inside `training_step`, `on_after_backward` or `on_before_optimizer_step`: "
               "Lightning calls `optimizer.zero_grad()` itself, before the next backward.")
    elif fw == "accelerate":
        fix = "Order the step as `accelerator.backward(loss); optimizer.step(); optimizer.zero_grad()`."
    else:
        fix = "Order the step as `loss.backward(); optimizer.step(); optimizer.zero_grad()`."
    return [Finding(
        title="Gradients are cleared before the optimizer steps",
        description=f"On {int(steps)} of the {int(watched)} optimizer steps watched, backward computed a gradient "
                    f"for {f.get('parameter')} and it was gone when the optimizer stepped: `zero_grad()` runs "  # type: ignore[union-attr]
                    "between `backward()` and `step()`, so no weight ever changes and the model cannot learn.",
        suggestion=fix,
        metric_key="cleared_steps", metric_value=int(steps), severity="critical", key="cleared_before_step",
        evidence={"cleared_steps": int(steps), "watched_steps": int(watched)},
        thresholds=ctx.th.pick("uncleared_grad_share"),
    )]


def output_width(ctx: Context) -> int | None:
    """The width of the model's output (from the setup facts), when it could be a number of classes (2 or more)."""
    out = _fact(ctx, "output")
    width = _num(out, "width")
    return int(width) if width and width >= 2 else None


@rule("double_softmax", severity="warning", category="loss")
def double_softmax(ctx: Context) -> list[Finding]:
    out, rec, th = _fact(ctx, "output"), ctx.epoch, ctx.th
    assert rec is not None
    k = output_width(ctx)
    share, low = _num(out, "rows_sum_to_one"), _num(out, "min")
    if k is None or share is None or share < 0.99 or low is None or low < 0:
        return []
    floor = math.log(1 + (k - 1) / math.e)
    lowest = ctx.state.lowest_train
    if lowest is None or lowest < floor * (1 - th.double_softmax_floor_margin):
        return []  # below the floor: the loss takes the log of the probabilities (nll_loss), no double softmax
    acc = rec.val_accuracy
    stuck = [r for r in ctx.state.recent(2) if finite(r.train_mean)
             and floor * (1 - th.double_softmax_floor_margin) <= r.train_mean <= floor * 1.1]  # type: ignore[operator]
    if not ((acc is not None and acc >= th.double_softmax_accuracy) or len(stuck) >= 2):
        return []
    layer = out.get("layer") if out else None  # type: ignore[union-attr]
    return [Finding(
        title="Softmax before the loss",
        description=f"The model's output ({out.get('type')} `{layer}`, {k} wide) already sums to one on every row, "  # type: ignore[union-attr]
                    f"and the training loss has never gone below {lowest:.4g}, at the {floor:.4g} floor that "
                    "cross_entropy reaches on probabilities instead of logits"
                    + (f", while validation accuracy is {acc:.3f}" if acc is not None else "")
                    + ": the loss applies softmax a second time and its gradients shrink as the model improves.",
        suggestion="Return raw logits from `forward` and let the loss apply softmax: remove the final "
                   "`nn.Softmax(dim=1)` (keep it for inference: `probs = logits.softmax(dim=1)`), or use "
                   "`F.nll_loss(torch.log(probs), y)` if the model must output probabilities.",
        metric_key="train_mean", metric_value=lowest, layer=layer,
        evidence={"output_layer": layer, "output_type": out.get("type"), "classes": k,  # type: ignore[union-attr]
                  "rows_sum_to_one": share, "lowest_loss": lowest, "loss_floor": floor, "val_accuracy": acc},
        thresholds=th.pick("double_softmax_accuracy", "double_softmax_floor_margin"),
    )]


@rule("optimizer_not_stepping_model", severity="warning", category="loss")
def optimizer_not_stepping_model(ctx: Context) -> list[Finding]:
    p = _fact(ctx, "parameters")
    trainable, held = _num(p, "trainable"), _num(p, "in_optimizer")
    if not trainable or held is None:
        return []
    orphans = _fact(ctx, "grad_without_optimizer")
    n_orphans = _num(orphans, "count") or 0
    foreign = int(_num(p, "foreign_in_optimizer") or 0)
    if held == 0:
        return [Finding(
            title="The optimizer does not hold the model's parameters",
            description=f"None of the model's {int(trainable)} trainable parameter tensors is in an optimizer"
                        + (f" (the optimizers hold {foreign} other tensors)" if foreign else "")
                        + ": every optimizer step changes nothing, and the weights never move.",
            suggestion="Build the optimizer over the model's own parameters, after the model: "
                       + ("`return torch.optim.Adam(self.parameters(), lr=1e-3)` in `configure_optimizers`"
                          if _framework(ctx) == "lightning" else
                          "`optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)` (not over a copy or an "
                          "earlier instance of the model)") + ".",
            metric_key="parameters_in_optimizer", metric_value=0, severity="critical",
            evidence={"trainable_tensors": int(trainable), "in_optimizer": 0, "foreign_in_optimizer": foreign},
        )]
    if n_orphans <= 0:
        return _cleared_before_step(ctx)
    names = list(orphans.get("names") or [])  # type: ignore[union-attr]
    return [Finding(
        title="Parameters with gradients outside every optimizer",
        description=f"{int(n_orphans)} trainable parameter tensors ({', '.join(names[:4])}"
                    f"{', ...' if n_orphans > 4 else ''}) receive gradients but are in no optimizer: they never "
                    "change, and their gradients cost compute.",
        suggestion="Add them to the optimizer (`torch.optim.AdamW(model.parameters(), ...)`), or freeze them "
                   "(`p.requires_grad_(False)`) if they are meant to stay fixed.",
        metric_key="parameters_without_optimizer", metric_value=int(n_orphans),
        evidence={"tensors": int(n_orphans), "numel": _num(orphans, "numel"), "names": names},
    )]


@rule("lr_schedule_collapse", severity="warning", category="loss")
def lr_schedule_collapse(ctx: Context) -> list[Finding]:
    st, rec, th = ctx.state, ctx.epoch, ctx.th
    assert rec is not None
    start, now = st.lr_initial, rec.max_lr
    if not start or now is None or not math.isfinite(now) or now >= start * th.lr_collapse_stalled_ratio:
        return []
    if now >= start * th.lr_collapse_ratio:  # fallen 20x or more, not 1000x: only with the loss stalled
        prev = [r for r in st.recent(2) if r.epoch < rec.epoch]
        if not prev or not finite(prev[-1].train_mean) or not finite(rec.train_mean):
            return []
        before, after = float(prev[-1].train_mean), float(rec.train_mean)  # type: ignore[arg-type]
        if before - after > abs(before) * th.loss_plateau_min_improvement_pct:
            return []  # the loss still falls: a steep schedule, not (yet) a collapse
    max_epochs = st.facts.get("max_epochs")
    if isinstance(max_epochs, (int, float)) and max_epochs > 0:
        if rec.epoch + 1 > max_epochs * th.lr_collapse_run_share:
            return []
    elif rec.epoch > 1:
        return []
    schedulers = [s for s in st.facts.get("schedulers") or () if isinstance(s, dict)]
    per_step = [s for s in schedulers if s.get("interval") == "step"]
    name = schedulers[0].get("type") if schedulers else None
    if per_step and _framework(ctx) == "lightning":
        fix = (f"The {per_step[0].get('type')} is stepped every batch (`{{\"interval\": \"step\"}}`): if its step_size or "
               "gamma is meant per epoch, return it with `{\"scheduler\": sched, \"interval\": \"epoch\"}` from "
               "`configure_optimizers`.")
    else:
        fix = ("Call `scheduler.step()` once per epoch, after the batch loop, if its settings are per epoch; or set "
               "them per step (a StepLR's step_size in batches, an ExponentialLR's gamma close to 1).")
    return [Finding(
        title="Learning-rate schedule collapsed",
        description=f"The learning rate fell from {start:.3g} to {now:.3g} ({start / max(now, 1e-300):.3g}x lower) "
                    f"by the end of epoch {rec.epoch}"
                    + (f" of {int(max_epochs)}" if isinstance(max_epochs, (int, float)) and max_epochs > 0 else "")
                    + (f" under a {name}" if name else "") + ": the model has all but stopped learning.",
        suggestion=fix,
        metric_key="lr", metric_value=now,
        evidence={"lr_initial": start, "lr_now": now, "epoch": rec.epoch, "scheduler": name,
                  "interval": per_step[0].get("interval") if per_step else (schedulers[0].get("interval")
                                                                            if schedulers else None)},
        thresholds=th.pick("lr_collapse_ratio", "lr_collapse_stalled_ratio", "lr_collapse_run_share"),
    )]


def _first_layer_normalises(ctx: Context) -> bool:
    arch = ctx.state.architecture
    if arch is None:
        return False
    nodes = arch.ordered_nodes()
    return bool(nodes) and nodes[0].kind in ("normalization", "embedding")


@rule("unnormalized_inputs", severity="warning", category="loss")
def unnormalized_inputs(ctx: Context) -> list[Finding]:
    x, th = _fact(ctx, "inputs"), ctx.th
    bad = _num(x, "nonfinite_values")
    if bad:  # not numbers at all: the data, not the optimisation, makes the loss NaN
        batches, first = int(_num(x, "nonfinite_batches") or 0), int(_num(x, "first_nonfinite_batch") or 0)
        return [Finding(
            title="The training data contains NaN or Inf",
            description=f"{batches} of the first training batches held non-finite input values ({int(bad)} in "
                        f"all; the first in batch {first}): every loss computed from them is NaN, whatever the "
                        "model and the learning rate.",
            suggestion="Find and drop (or impute) the rows: `bad = ~torch.isfinite(x).all(dim=1)`; "
                       "`x, y = x[~bad], y[~bad]` (or `torch.nan_to_num(x)` if a default value is right), "
                       "and check how the dataset was loaded or joined.",
            metric_key="nonfinite_inputs", metric_value=int(bad), key="nonfinite",
            evidence={"nonfinite_values": int(bad), "batches": batches, "first_batch": first},
        )]
    first = _fact(ctx, "first_layer_input")  # what the first layer receives (the model may scale the batch)
    if first is not None:
        if any(k in str(first.get("type")) for k in ("Norm", "Embedding")):
            return []  # the model normalises its input first (BatchNorm/LayerNorm) or looks up embeddings
        if _num(first, "mean") is not None:
            x = first
    mean, std = _num(x, "mean"), _num(x, "std")
    if mean is None or std is None or max(abs(mean), std) <= th.unnormalized_input_scale:
        return []
    if first is None and _first_layer_normalises(ctx):
        return []  # the model's first layer normalises (BatchNorm/LayerNorm) or looks up embeddings
    lo, hi = _num(x, "min"), _num(x, "max")
    pixels = lo is not None and hi is not None and lo >= 0 and 100 <= hi <= 255
    return [Finding(
        title="Inputs are not normalised",
        description=(f"The input of the first layer, {first.get('layer')}," if x is first  # type: ignore[union-attr]
                     else "The first training batches' inputs") + f" have mean {mean:.4g} and standard deviation {std:.4g} "
                    f"(range {lo:.4g} to {hi:.4g})" + (", raw pixel values" if pixels else "")
                    + ": far from the unit scale that default initialisations assume, so the first layers saturate "
                    "or their gradients are huge.",
        suggestion=("Scale pixels to [0, 1] and standardise: `transforms.Compose([transforms.ToTensor(), "
                    "transforms.Normalize(mean, std)])`, or `x = (x / 255 - mean) / std`." if pixels else
                    "Standardise each feature with the training set's statistics: `x = (x - mean) / std` "
                    "(`sklearn.preprocessing.StandardScaler`), or put `nn.BatchNorm1d`/`nn.LayerNorm` first."),
        metric_key="input_std", metric_value=std,
        evidence={"mean": mean, "std": std, "min": lo, "max": hi, "dtype": x.get("dtype")},  # type: ignore[union-attr]
        thresholds=th.pick("unnormalized_input_scale"),
    )]


@rule("unshuffled_data", severity="warning", category="loss")
def unshuffled_data(ctx: Context) -> list[Finding]:
    t, th = _fact(ctx, "targets"), ctx.th
    if not t:
        return []
    sampler = ctx.state.facts.get("sampler")
    if isinstance(sampler, str) and ("Random" in sampler or "shuffle=True" in sampler):
        return []  # sampled at random: whatever order the dataset is in, the batches mix
    per_batch = [float(v) for v in t.get("batch_classes") or () if isinstance(v, (int, float))]
    sizes = [float(v) for v in t.get("batch_sizes") or () if isinstance(v, (int, float))]
    if len(per_batch) < th.unshuffled_min_batches or not sizes:
        return []
    k = max(int(_num(t, "classes_seen") or 0), output_width(ctx) or 0)
    b = median(sizes) or 0.0
    if k < 2 or b < 2:
        return []
    expected = k * (1 - (1 - 1 / k) ** b)
    mix = sum(per_batch) / len(per_batch)
    if expected < 1.5 or mix >= th.unshuffled_class_mix * expected:
        return []
    return [Finding(
        title="Training data is not shuffled",
        description=f"The first {len(per_batch)} training batches hold {mix:.2g} classes each on average, where "
                    f"random batches of {b:.0f} from {k} classes would hold {expected:.2g}"
                    + (f" (sampler: {sampler})" if sampler else "")
                    + ": the data arrives sorted by label, so every step pulls the model towards one class.",
        suggestion="Shuffle the training set: `DataLoader(train_set, batch_size=..., shuffle=True)` (keep "
                   "`shuffle=False` for validation).",
        metric_key="classes_per_batch", metric_value=mix,
        evidence={"classes_per_batch": mix, "expected_if_shuffled": expected, "classes": k, "batch_size": b,
                  "sampler": sampler},
        thresholds=th.pick("unshuffled_class_mix", "unshuffled_min_batches"),
    )]


@rule("eval_mode_training", severity="warning", category="loss")
def eval_mode_training(ctx: Context) -> list[Finding]:
    mode, layers, th = _fact(ctx, "training_mode"), _fact(ctx, "mode_layers"), ctx.th
    steps, evals = _num(mode, "steps"), _num(mode, "eval_steps")
    count = _num(layers, "count")
    if not steps or evals is None or evals / steps < th.eval_mode_share or not count:
        return []  # without dropout or normalisation layers eval mode changes nothing
    fw = _framework(ctx)
    return [Finding(
        title="Training steps run in eval mode",
        description=f"{int(evals)} of the last epoch's {int(steps)} training steps ran with the model in eval mode: "
                    f"its {int(count)} dropout/normalisation layers behave as at inference (no dropout, frozen "
                    "BatchNorm statistics) while it trains.",
        suggestion=("Do not call `self.eval()` in training hooks; Lightning switches modes itself (after validation "
                    "it calls `model.train()`)." if fw == "lightning" else
                    "Call `model.train()` at the start of every training epoch (after evaluating with "
                    "`model.eval()`)."),
        metric_key="eval_steps", metric_value=int(evals),
        evidence={"eval_steps": int(evals), "steps": int(steps), "mode_layers": int(count)},
        thresholds=th.pick("eval_mode_share"),
    )]


@rule("batchnorm_tiny_batch", severity="warning", category="loss")
def batchnorm_tiny_batch(ctx: Context) -> list[Finding]:
    arch, th = ctx.state.architecture, ctx.th
    if arch is None:
        return []
    bns = [n.id for n in arch.ordered_nodes() if "BatchNorm" in (n.type or "")]
    if not bns:
        return []
    t, x = _fact(ctx, "targets"), _fact(ctx, "inputs")
    sizes = [float(v) for v in (t or {}).get("batch_sizes") or () if isinstance(v, (int, float))]
    shape = (x or {}).get("shape") or []
    b = median(sizes) if sizes else (float(shape[0]) if shape and isinstance(shape[0], (int, float)) else None)
    if b is None or b >= th.batchnorm_min_batch:
        return []
    return [Finding(
        title="BatchNorm on tiny batches",
        description=f"Batches of {b:.0f} samples go through {len(bns)} BatchNorm layer(s) ({', '.join(bns[:3])}): "
                    "statistics of so few samples are noise, so training is erratic and the running statistics "
                    "used at evaluation do not match what the model trained on.",
        suggestion="Use a batch of 16 or more per device, or replace BatchNorm with a batch-independent norm: "
                   "`nn.GroupNorm(8, channels)` or `nn.LayerNorm(features)`.",
        metric_key="batch_size", metric_value=b, layer=bns[0],
        evidence={"batch_size": b, "batchnorm_layers": bns},
        thresholds=th.pick("batchnorm_min_batch"),
    )]


@rule("unused_parameters", severity="warning", category="sustainability")
def unused_parameters(ctx: Context) -> list[Finding]:
    u, p, th = _fact(ctx, "unused_parameters"), _fact(ctx, "parameters"), ctx.th
    count, numel = _num(u, "count"), _num(u, "numel")
    if not count or not numel or _cleared_before_step(ctx):
        return []  # (gradients cleared before every step leave every parameter without one: not unused)
    total = _num(p, "trainable_numel") or 0.0
    share = numel / total if total else None
    names = list(u.get("names") or [])  # type: ignore[union-attr]
    return [Finding(
        title="Parameters that never receive a gradient",
        description=f"{int(count)} trainable parameter tensors ({int(numel):,} values"
                    + (f", {share * 100:.1f} % of the model" if share is not None else "")
                    + f"; {', '.join(names[:4])}{', ...' if count > 4 else ''}) got no gradient in the first "
                    f"{int(_num(u, 'watched_steps') or 0)} optimizer steps: the forward pass never uses them, or "
                    "their output reaches the loss only through `.detach()`, `.data`, `torch.no_grad()` or a "
                    "conversion to NumPy, which cut the gradient's way back to them.",
        suggestion="Find where these layers' output goes in `forward`: remove a `.detach()` / `.data` / "
                   "`torch.no_grad()` on its way to the loss if they should learn; otherwise delete the layer or "
                   "freeze it (`requires_grad_(False)`). Under DDP unused parameters also need "
                   "`find_unused_parameters=True`.",
        metric_key="unused_parameters", metric_value=int(count),
        severity="warning" if share is None or share >= th.unused_parameter_share else "info",
        evidence={"tensors": int(count), "numel": int(numel), "share": share, "names": names},
        thresholds=th.pick("unused_parameter_share"),
    )]


@rule("missing_grad_clipping", severity="warning", category="loss", arch_types=RECURRENT)
def missing_grad_clipping(ctx: Context) -> list[Finding]:
    clip, rec, th = _fact(ctx, "grad_clip"), ctx.epoch, ctx.th
    assert rec is not None
    if clip is None or (_num(clip, "value") or 0.0) > 0:
        return []  # clipping on, or unknown (a plain loop's clip_grad_norm_ is not seen)
    peak, mean = rec.grad_norm_max, rec.grad_norm
    if not finite(peak) or not finite(mean) or not mean or peak / mean < th.grad_spike_ratio:  # type: ignore[operator]
        return []
    fw = _framework(ctx)
    return [Finding(
        title="Gradient spikes without clipping",
        description=f"In epoch {rec.epoch} the largest sampled gradient norm was {peak:.4g}, {peak / mean:.0f}x the "  # type: ignore[operator]
                    f"epoch's mean {mean:.4g}, in a {ctx.state.arch_type} model trained without gradient clipping: "
                    "recurrent and attention models need it to keep one bad batch from undoing training.",
        suggestion=("`Trainer(gradient_clip_val=1.0)`" if fw == "lightning" else
                    "`TrainingArguments(output_dir='out', max_grad_norm=1.0)`" if fw == "transformers" else
                    "`accelerator.clip_grad_norm_(model.parameters(), 1.0)` before `optimizer.step()`"
                    if fw == "accelerate" else
                    "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)` between `loss.backward()` and "
                    "`optimizer.step()`") + ".",
        metric_key="grad_norm_max", metric_value=peak,
        evidence={"grad_norm_max": peak, "grad_norm_mean": mean, "ratio": peak / mean,  # type: ignore[operator]
                  "clipping": 0.0, "arch_type": ctx.state.arch_type},
        thresholds=th.pick("grad_spike_ratio"),
    )]


_TARGET = "Using a target size ("
_INPUT = ") that is different to the input size ("


def _broadcast_shapes(message: str) -> tuple[str, str] | None:
    """(target shape, output shape) from torch's broadcasting warning, e.g. "Using a target size
    (torch.Size([64])) that is different to the input size (torch.Size([64, 1]))"."""
    i = message.find(_TARGET)
    j = message.find(_INPUT, i + len(_TARGET)) if i >= 0 else -1
    k = message.find("])", j + len(_INPUT)) if j >= 0 else -1
    if k < 0:
        return None
    return message[i + len(_TARGET):j], message[j + len(_INPUT):k + 2]


@rule("broadcast_loss_shapes", severity="warning", category="loss", on=("log",), sticky=True)
def broadcast_loss_shapes(ctx: Context) -> list[Finding] | None:
    """torch's own warning, captured from the run's logs: a regression loss (mse_loss, l1_loss, smooth_l1_loss)
    given an output of shape (N, 1) and a target of shape (N,) broadcasts them to (N, N) and compares every
    output with every target: the loss settles at the target's variance and the model learns its mean."""
    rec = ctx.log
    shapes = _broadcast_shapes(rec.message) if rec is not None else None
    if shapes is None:
        return None
    target, output = shapes
    return [Finding(
        title="The loss compares outputs and targets of different shapes",
        description=f"torch warned that the loss got a target of {target} and an output of {output}: they are "
                    "broadcast against each other, so every output is compared with every target and the model "
                    "can only learn the targets' mean (the loss stalls at their variance).",
        suggestion="Give the loss matching shapes: `loss_fn(output.squeeze(-1), target)` or "
                   "`loss_fn(output, target.unsqueeze(-1))`.",
        metric_key="broadcast_warning", metric_value=1,
        evidence={"target_shape": target, "output_shape": output, "epoch": rec.epoch},  # type: ignore[union-attr]
    )]


_LAYERS = ("linear", "convolution", "recurrent", "attention", "activation", "normalization", "embedding")


@rule("relu_output", severity="warning", category="loss")
def relu_output(ctx: Context) -> list[Finding]:
    """The model ends in a ReLU (a hidden block's `[Linear, ReLU]` copied once too often): every negative output is
    clamped to 0 and gets no gradient, so a regression cannot go below zero and logits cannot be negative. Judged
    from the architecture (the last layer on the model's path is a ReLU) and confirmed by the first step's output
    (its smallest value exactly 0), so a `self.relu` registered last but used in the middle never fires."""
    arch, out = ctx.state.architecture, _fact(ctx, "output")
    low = _num(out, "min")
    if arch is None or low is None or low != 0.0:
        return []
    path = [n for n in arch.ordered_nodes() if n.kind in _LAYERS]
    if len(path) < 2 or path[-1].type not in ("ReLU", "ReLU6") or path[-2].kind not in ("linear", "convolution"):
        return []
    last, before = path[-1], path[-2]
    return [Finding(
        title="The model's output passes through a ReLU",
        description=f"The last layer, {last.id} ({last.type}), follows {before.id} ({before.type}), and the first "
                    "step's outputs had 0 as their smallest value: every negative output is clamped to 0 and gets "
                    "no gradient, so the model cannot predict a negative value and half its outputs stop learning.",
        suggestion=f"Remove the final activation (`{last.id}`): return the last layer's output as it is (raw "
                   "logits for a classifier; `nn.Softplus()` if the target must be positive).",
        metric_key="output_min", metric_value=0.0, layer=last.id,
        evidence={"layer": last.id, "after": before.id, "output_min": low},
    )]


_RNNS = ("RNN", "LSTM", "GRU")


@rule("rnn_batch_first", severity="warning", category="loss")
def rnn_batch_first(ctx: Context) -> list[Finding]:
    """An `nn.RNN`/`nn.LSTM`/`nn.GRU` without ``batch_first=True`` fed a (batch, time, features) tensor: it reads
    the batch as time and the time steps as the batch, so each "sequence" it learns from is one time step of every
    sample and the samples' order in the batch is what it remembers. Seen in the first forward pass: the layer's
    traced input has the batch size (the first batches' targets) in its first dimension and not in its second."""
    arch, t = ctx.state.architecture, _fact(ctx, "targets")
    sizes = [int(v) for v in (t or {}).get("batch_sizes") or () if isinstance(v, (int, float))]
    if arch is None or not sizes:
        return []
    batch = sizes[0]
    out: list[Finding] = []
    for node in arch.nodes:
        shape = node.input_shape
        if node.type not in _RNNS or node.batch_first or len(shape) != 3 or shape[0] != batch or shape[1] == batch:
            continue
        out.append(Finding(
            title="A recurrent layer reads the batch as time",
            description=f"{node.id} ({node.type}) was built without `batch_first=True` and its first input was "
                        f"{tuple(shape)}, the batch size {batch} first: it takes dimension 0 as time, so it runs "
                        f"{shape[0]} \"time steps\" across the batch's samples and treats the {shape[1]} real time "
                        "steps as separate sequences. The model cannot learn the sequences' order.",
            suggestion=f"Build it with `nn.{node.type}(..., batch_first=True)` (or pass `x.transpose(0, 1)`, shape "
                       "(time, batch, features), and read its output the same way).",
            metric_key="input_shape", metric_value=float(shape[0]), layer=node.id, key=node.id,
            evidence={"layer": node.id, "input_shape": list(shape), "batch_size": batch, "batch_first": False},
        ))
    return out
