"""Root cause first: which of a run's issues most likely caused the others.

``CAUSES`` maps a check to the checks whose symptoms it can account for (a forgotten ``zero_grad`` makes the loss
explode; an exploded loss wastes the epochs after it). The map is a directed acyclic graph over check ids, written
from the mechanisms in the diagnostics guide and the fault literature (tests check it is acyclic).

:func:`rank_issues` orders one run's issues, active and cleared alike (a cleared issue is history and still
explains what it caused):

0. An issue explains another when the map says it can and, unless it is a fact about the program from its start
   (``TIMELESS``: the setup bugs, the architecture), it began no later than the other.
1. The causes (issues no other issue of the run explains) come first, each followed by the issues it explains
   (depth first: a symptom right after its cause, a symptom of that symptom after it), each issue once.
2. Among the causes, and among the symptoms of one cause, the larger the weight of what an issue explains (its own severity weight plus those of every
   issue it explains, directly or through others; a cleared issue counts half), the earlier: the cause that accounts
   for the most of what went wrong.
3. Then the more specific kind of check (``TIER``: a program bug, a setting, a mechanism, a loss symptom, a
   consequence), the higher severity, the earlier first epoch, the check id.

Each issue gets ``rank`` (1 = the most likely root cause) and ``explains`` (the check ids it directly accounts
for among the run's issues). ``atlas issues``, the collector and ``atlas diagnose`` all rank through this function,
so they give the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ._issue import SEVERITY_WEIGHT, Issue

__all__ = ["CAUSES", "TIER", "rank_issues"]

_LOSS_SYMPTOMS = ("loss_explosion", "nan_loss", "loss_divergence", "gradient_instability", "high_loss_variance")
_WASTE = ("early_stopping_missed", "wasted_carbon", "diminishing_returns")

CAUSES: dict[str, tuple[str, ...]] = {
    # program bugs, from the run's facts
    "missing_zero_grad": _LOSS_SYMPTOMS + ("exploding_gradients", "lr_too_high", "dead_layers", "vanishing_gradients",
                                           "saturated_activation", "loss_plateau", "loss_at_chance"),
    "relu_output": ("loss_plateau", "loss_at_chance", "dead_layers", "lr_too_low") + _WASTE,
    "rnn_batch_first": ("loss_plateau", "loss_at_chance", "lr_too_low", "vanishing_gradients", "high_loss_variance",
                        "missing_grad_clipping") + _WASTE,
    "frozen_backbone": ("loss_plateau", "loss_at_chance", "lr_too_low", "unused_parameters",
                        "frozen_output_layers") + _WASTE,
    "broadcast_loss_shapes": ("loss_plateau", "loss_at_chance", "lr_too_low", "high_loss_variance",
                              "error_logs") + _WASTE,
    "excessive_dropout": ("loss_at_chance", "loss_plateau", "high_loss_variance", "gradient_instability",
                          "lr_too_low") + _WASTE,
    "optimizer_not_stepping_model": ("missing_zero_grad", "unused_parameters", "loss_plateau", "lr_too_low",
                                     "loss_at_chance",
                                     "frozen_output_layers", "vanishing_gradients", "dead_layers") + _WASTE,
    "double_softmax": ("loss_plateau", "lr_too_low", "vanishing_gradients", "loss_at_chance") + _WASTE,
    "lr_schedule_collapse": ("lr_too_low", "loss_plateau", "loss_at_chance") + _WASTE,
    "unnormalized_inputs": _LOSS_SYMPTOMS + ("saturated_activation", "dead_layers", "exploding_gradients",
                                             "vanishing_gradients", "lr_too_high", "loss_plateau"),
    "unshuffled_data": ("high_loss_variance", "gradient_instability", "loss_plateau", "loss_divergence",
                        "dead_layers", "lr_too_high", "loss_explosion", "exploding_gradients", "overfitting"),
    "eval_mode_training": ("overfitting", "high_loss_variance", "loss_divergence"),
    "batchnorm_tiny_batch": ("high_loss_variance", "gradient_instability", "overfitting", "loss_divergence",
                             "loss_plateau"),
    "missing_grad_clipping": ("exploding_gradients", "gradient_instability", "loss_explosion", "nan_loss",
                              "high_loss_variance", "lr_too_high"),
    "unused_parameters": ("redundant_layers",),
    "loss_at_chance": ("loss_plateau", "lr_too_low") + _WASTE,
    # settings
    "lr_too_high": _LOSS_SYMPTOMS + ("exploding_gradients", "dead_layers", "loss_at_chance") + _WASTE,
    "lr_too_low": ("loss_plateau",) + _WASTE,
    "rnn_too_deep": ("vanishing_gradients", "depth_gradient_ratio"),
    "missing_pooling": ("loss_plateau", "loss_at_chance", "slow_epoch"),
    "memory_growth": ("throughput_degradation", "slow_epoch", "gpu_memory_growth"),
    "low_gpu_utilization": ("gpu_idle_waste", "device_underutilization"),
    # mechanisms
    "exploding_gradients": _LOSS_SYMPTOMS + ("dead_layers", "lr_too_high") + _WASTE,
    "dead_layers": ("vanishing_gradients", "loss_plateau", "activation_collapse", "loss_at_chance"),
    "saturated_activation": ("vanishing_gradients", "loss_plateau", "depth_gradient_ratio", "loss_at_chance"),
    "vanishing_gradients": ("loss_plateau", "depth_gradient_ratio", "lr_too_low", "loss_at_chance"),
    "depth_gradient_ratio": ("loss_plateau", "loss_at_chance", "lr_too_low"),
    "frozen_output_layers": ("loss_plateau", "loss_at_chance"),
    "throughput_degradation": ("slow_epoch", "step_time_outlier"),
    # loss symptoms
    "loss_explosion": ("nan_loss", "loss_divergence", "gradient_instability", "high_loss_variance",
                       "loss_at_chance", "lr_too_high") + _WASTE,
    "nan_loss": ("exploding_gradients",) + _WASTE,  # a NaN loss makes NaN gradients in its own step
    "loss_divergence": _WASTE,
    "loss_plateau": _WASTE,
    "overfitting": _WASTE,
}

_BUGS = ("missing_zero_grad", "optimizer_not_stepping_model", "double_softmax", "lr_schedule_collapse",
         "unnormalized_inputs", "unshuffled_data", "eval_mode_training", "batchnorm_tiny_batch",
         "missing_grad_clipping", "unused_parameters", "loss_at_chance", "data_leakage", "broadcast_loss_shapes",
         "relu_output", "frozen_backbone", "rnn_batch_first")
_SETTINGS = ("lr_too_high", "lr_too_low", "rnn_too_deep", "memory_growth", "low_gpu_utilization", "error_logs",
             "fc_dominates_params", "conv_bottleneck", "missing_pooling", "large_kernel", "grayscale_channel_explosion",
             "attention_head_dim", "embedding_oversized", "excessive_dropout")
_MECHANISMS = ("exploding_gradients", "dead_layers", "saturated_activation", "vanishing_gradients",
               "depth_gradient_ratio", "frozen_output_layers", "activation_collapse", "throughput_degradation",
               "gpu_memory_growth", "straggler_rank", "stalled_training")
_SYMPTOMS = _LOSS_SYMPTOMS + ("loss_plateau", "overfitting")
_CONTEXT = ("device_underutilization", "cpu_dominant_training", "high_cpu", "carbon_intensity_spike")

#: How specific a check is about the cause: 0 a program bug, 1 a setting, 2 a mechanism, 3 a loss symptom, 4 a
#: consequence or anything else, 5 a note about the environment (a CPU-only run, a dirty grid).
TIER: dict[str, int] = {**{c: 0 for c in _BUGS}, **{c: 1 for c in _SETTINGS}, **{c: 2 for c in _MECHANISMS},
                        **{c: 3 for c in _SYMPTOMS}, **{c: 5 for c in _CONTEXT}}

#: Checks whose finding is a fact about the program from its first step (its setup, its architecture), whenever it
#: was judged. Any other check explains only what began no earlier than it did (a loss oscillation found at epoch 3
#: cannot have caused a gradient spike at epoch 2).
TIMELESS = frozenset(c for c in _BUGS if c not in ("loss_at_chance", "data_leakage")) | frozenset(
    ("fc_dominates_params", "conv_bottleneck", "missing_pooling", "large_kernel", "grayscale_channel_explosion",
     "attention_head_dim", "embedding_oversized", "rnn_too_deep", "excessive_dropout"))

#: Pairs that can explain each other; at the same onset the first explains the second (a NaN loss makes NaN
#: gradients in its own step; an exploding gradient makes the loss non-finite only at the next one).
_TIES = {("nan_loss", "exploding_gradients")}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _onset(issue: Issue) -> tuple[float, float]:
    """When an issue began: its first epoch, and within it the step for a step-level finding (an epoch-level one
    is judged at the epoch's end)."""
    epoch = issue.first_seen_epoch if issue.first_seen_epoch is not None else -1
    return (float(epoch), float(issue.step) if issue.step is not None else float("inf"))


def _weight(issue: Issue) -> float:
    return SEVERITY_WEIGHT.get(issue.severity, 0) * (1.0 if issue.active else 0.5)


def rank_issues(issues: Iterable[Issue]) -> list[Issue]:
    """One run's issues, ordered root cause first, each with ``rank`` and ``explains`` set (see the module)."""
    items = list(issues)
    present: dict[str, list[Issue]] = {}
    for issue in items:
        present.setdefault(issue.check, []).append(issue)
    onset = {c: min(_onset(i) for i in present[c]) for c in present}

    def can_explain(cause: str, symptom: str) -> bool:
        if symptom not in present or symptom == cause or symptom not in CAUSES.get(cause, ()):
            return False
        if cause in TIMELESS:
            return True
        if onset[cause] > onset[symptom]:
            return False
        if onset[cause] == onset[symptom] and cause in CAUSES.get(symptom, ()):
            return (cause, symptom) in _TIES  # both ways at once: the tie's order decides
        return True

    direct = {c: tuple(sorted(s for s in present if can_explain(c, s))) for c in present}
    explained = {s for c in present for s in direct[c]}

    reach: dict[str, set[str]] = {}

    def reachable(check: str) -> set[str]:
        if check not in reach:
            reach[check] = set()  # the map is acyclic; this guards a bad edit from recursing forever
            out: set[str] = set()
            for s in direct[check]:
                out.add(s)
                out |= reachable(s)
            reach[check] = out
        return reach[check]

    check_weight = {c: max(_weight(i) for i in present[c]) for c in present}
    score = {c: check_weight[c] + sum(check_weight[s] for s in reachable(c)) for c in present}

    def key(issue: Issue) -> tuple[object, ...]:
        first = issue.first_seen_epoch if issue.first_seen_epoch is not None else -1
        return (-score[issue.check], TIER.get(issue.check, 4), _SEVERITY_ORDER.get(issue.severity, 3),
                not issue.active, first, issue.check, issue.layer or "", issue.key or "")

    # the causes in order, each followed by what it explains (depth first, each issue once)
    ordered: list[Issue] = []
    placed: set[int] = set()

    def place(issue: Issue) -> None:
        if id(issue) in placed:
            return
        placed.add(id(issue))
        ordered.append(issue)
        for symptom in sorted((i for s in direct[issue.check] for i in present[s]), key=key):
            place(symptom)

    for issue in sorted((i for i in items if i.check not in explained), key=key):
        place(issue)
    for issue in sorted(items, key=key):  # only reachable through a cycle, which the map has none of
        place(issue)
    return [dataclasses.replace(issue, rank=n, explains=direct[issue.check]) for n, issue in enumerate(ordered, 1)]
