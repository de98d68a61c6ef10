"""Every threshold the checks judge by, in one frozen dataclass.

Defaults come from the diagnostics guide (docs ``diagnostics-guide.md`` sections 5-7 and 11.11) and the system
reference's check tables (section 5.5). Checks the guide only sketches take their defaults from published rule sets,
cited next to the field:

- SageMaker Debugger built-in rules, https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html
  (DeadRelu ``threshold_layer`` 50 %, SaturatedActivation ``threshold_layer`` 50 %, VanishingGradient ``threshold``
  1e-7, WeightUpdateRatio ``small_threshold`` 1e-8 / ``large_threshold`` 10, StalledTrainingRule ``threshold``
  1800 s, ExplodingTensor: any NaN/inf).
- AUTOTRAINER (Zhang et al., ICSE 2021) for oscillating loss as the symptom of a too-high learning rate and slow
  monotone progress as the symptom of a too-low one.

Fractions are in [0, 1] unless the name ends in ``_pct`` (also a fraction: 0.2 means 20 %); ratios are plain
multiples; ``*_epochs`` are counts of epochs; times are seconds; memory is MB.

Per-run overrides and the collector's TOML file go through :meth:`Thresholds.from_mapping`, which refuses unknown
keys and wrong types with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._exceptions import ThresholdError

__all__ = ["Thresholds"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of every check. Defaults are the reference values; see the module docstring for sources."""

    # --- loss -------------------------------------------------------------------------------------------------
    loss_explosion_ratio: float = 2.0  # the loss level above this multiple of its best level so far is an
    # explosion (guide 5.2 compares consecutive epoch means; the best level is the same rule for a loss that climbs
    # over several epochs or inside one) ...
    loss_explosion_min_rise_pct: float = 0.25  # ... when the rise is also at least a quarter of the loss the run
    # started from: near convergence a loss of 0.01 that reads 0.03 has tripled and is still noise (healthy runs in
    # tests/faults rise by at most 4 % of their start when the ratio alone would call it). Critical only while the
    # level is at or above where the run started (all it learned is lost: it exploded and did not recover);
    # below that, a warning, and the issue clears once the level is back under the ratio
    loss_explosion_noise_sigmas: float = 4.0  # ... and the ratio is widened by exp(this many relative standard
    # errors of a level): with batch losses that vary 50 % from one batch to the next a level wanders 20 % by
    # chance, and the lowest of hundreds of levels is a lucky one (the ratio then reads 4.5x; 2.2x at 10 %)
    loss_level_steps: int = 10  # the step series' loss level: the trimmed mean of the last this many step losses
    # (rank 0; AMP-skipped and non-finite steps left out) ...
    loss_level_trim_pct: float = 0.2  # ... without this share of them at each end: one or two odd batches never
    # make a level, while an explosion (every other batch huge, or huge and zero in turn) does
    loss_divergence_epochs: int = 2  # consecutive rising epochs (guide 5.1)
    loss_divergence_min_rise_pct: float = 0.01  # a rise smaller than 1 % of the previous loss is noise, not a rise
    loss_divergence_min_total_pct: float = 0.03  # ... and the whole climb must reach 3 % of the first epoch's loss:
    # near convergence (tests/faults, healthy SGD with momentum at 3 % of its first loss) a run wobbles upwards by
    # tens of per cent of a tiny loss, which is not a divergence
    loss_plateau_window: int = 3  # epochs looked back (guide 5.3)
    loss_plateau_min_improvement_pct: float = 0.01  # < 1 % relative improvement over the window is a plateau
    chance_loss_tolerance_pct: float = 0.05  # a loss within 5 % of ln(classes) is at the chance level (the model
    # predicts the class prior; classes = the width of the model's last Linear) ...
    chance_accuracy_margin: float = 0.1  # ... unless validation accuracy beats 1/classes by more than this ...
    chance_epochs: int = 2  # ... for this many consecutive epochs (an untrained classifier starts there: one epoch
    # is every run's start)
    overfitting_epochs: int = 2  # epochs since the best validation loss, each above it (guide 5.4: "happened twice")
    overfitting_window: int = 5  # the validation curve's noise is judged over this many trailing epochs (+1) ...
    overfitting_min_rise_pct: float = 0.10  # ... and val_loss must sit above its best by this share of it (healthy
    # runs drift 2-5 % above their best from one epoch to the next: the demo's 3-epoch run, tests/faults
    # "healthy_adam_5class"; with too few epochs to measure the wobble this floor is all there is) ...
    overfitting_noise_sigmas: float = 3.0  # ... and by this many robust standard deviations of the validation
    # curve's own epoch-to-epoch wobble (1.4826 x MAD of its second differences / sqrt(6)), as throughput_degradation
    overfitting_train_tolerance_pct: float = 0.05  # the training loss must be falling or flat-low: within 5 % of
    # its lowest since the best validation epoch. A training loss that rises with validation is divergence
    high_loss_variance_cv: float = 0.5  # train_std / train_mean (guide 5.5)
    loss_spread_min_loss_pct: float = 0.10  # variance/spike checks judge only while train_mean >= 10 % of the
    # first epoch's loss: near zero, a few misclassified batches make std/mean and max/mean large in healthy runs
    loss_spread_max_fall_pct: float = 0.25  # ... and only once the loss fell less than 25 % since the previous
    # epoch: while it still falls fast, the within-epoch spread is the downward trend, not noise (tests/faults:
    # every healthy run's second epoch read std/mean 0.5-0.8 while its mean fell 70-85 %)
    gradient_instability_ratio: float = 20.0  # train_max / train_mean (guide 5.6)
    lr_oscillation_window: int = 6  # epochs looked at for an oscillating loss (AUTOTRAINER "oscillating loss")
    lr_oscillation_sign_changes: int = 4  # direction changes of the loss within the window
    lr_oscillation_min_swing_pct: float = 0.03  # mean |relative change| per epoch; smaller swings are noise
    lr_too_high_update_ratio: float = 0.25  # or: the median over layers of the epoch's mean per-step update ratio
    lr_too_high_stalled_update_ratio: float = 0.1  # or: a layer moving 10 % of its norm per step (100x a healthy
    #   1e-3) while the loss has made no progress over lr_too_high_stalled_epochs epochs
    lr_too_high_stalled_epochs: int = 2  # epochs after the best one without a new best by lr_too_high_stalled_gain_pct
    lr_too_high_stalled_gain_pct: float = 0.03
    # |dw| / |w| above this. CS231n's rule of thumb puts a healthy ratio near 1e-3; the healthy real runs of
    # tests/faults stay below 0.09 even in their first epoch, while SGD at 40x the working LR reads 0.7-3.6
    lr_too_low_value: float = 1e-6  # the largest param-group LR below this ...
    lr_too_low_window: int = 3  # ... while the loss fell monotonically for this many epochs ...
    lr_too_low_max_improvement_pct: float = 0.01  # ... by less than 1 % in total (AUTOTRAINER "slow convergence")
    lr_too_low_update_ratio: float = 1e-5  # or: every layer's per-step update ratio below this while the loss fell
    # less than lr_too_low_max_improvement_pct since the previous epoch: weights that barely move. Healthy real
    # runs (tests/faults) stay above 1e-3; SGD at lr=1e-7 reads 3e-8 to 3e-7. (SageMaker WeightUpdateRatio's
    # small_threshold of 1e-8 is for single steps of large models and missed a 500,000x too small LR.)
    exploding_grad_norm: float = 1e5  # a gradient norm above this is extreme (ExplodingTensor treats inf/NaN)
    exploding_grad_ratio: float = 1000.0  # ... or above this multiple of the recent median gradient norm
    weight_jump_ratio: float = 1.0  # exploding_gradients (a warning): one sampled step moved a layer's weights by
    # this multiple of their norm (layer health's update_ratio_max), from epoch 1 on
    exploding_grad_history: int = 64  # gradient norms kept for that median (steps)
    data_leakage_val_train_ratio: float = 0.5  # val_loss below half the train loss ...
    data_leakage_epochs: int = 3  # ... for this many consecutive epochs (info: dropout and the epoch mean's lag do
    # that on healthy runs too; tests/faults)
    data_leakage_accuracy: float = 0.999  # or a validation accuracy this high in the first epoch (info: easy data
    # does that; tests/faults "healthy_easy_fast", "healthy_manual_sgd")

    # --- system -----------------------------------------------------------------------------------------------
    throughput_drop_pct: float = 0.20  # below (1 - 0.2) x the reference samples/s (guide 5.7: the peak) ...
    throughput_drop_epochs: int = 2  # ... for this many consecutive epochs
    throughput_reference_epochs: int = 10  # the reference is the median of these epochs before them and them
    # (the guide's "peak" is the luckiest epoch of a noisy series: see throughput_degradation)
    throughput_noise_sigmas: float = 3.0  # ... and the drop must exceed this many robust standard deviations of
    # the run's own epoch-to-epoch log throughput (judged with 3+ epochs before the drop); slow_epoch uses the
    # same number of sigmas of log epoch duration
    memory_growth_pct: float = 0.25  # RSS growth against the baseline epoch (guide 5.8) ...
    memory_growth_min_mb: float = 100.0  # ... and at least this many MB (small processes jitter by tens of MB)
    memory_baseline_epoch: int = 0  # index of the epoch whose RSS is the baseline: the first, as in the guide
    # ("from first to last epoch"). It was epoch 1 for allocator warm-up, but on real runs (tests/faults) the RSS of
    # every healthy control grew by at most 2 MB after epoch 0 (warm-up ends within the first steps), while a list
    # leaking from the first step was found only at epoch 3 against epoch 1's already leaked baseline.
    gpu_memory_baseline_epoch: int = 1  # the same for CUDA memory: its caching allocator and cuDNN workspaces
    # do keep growing into the second epoch
    gpu_memory_growth_pct: float = 0.25  # same rule for CUDA allocated memory
    gpu_memory_growth_min_mb: float = 256.0
    slow_epoch_factor: float = 1.5  # duration above 1.5 x median of recent epochs (guide 5.9)
    slow_epoch_window: int = 20  # epochs the median is taken over
    slow_epoch_min_history: int = 3  # epochs needed before judging
    high_cpu_percent: float = 90.0  # % (guide 5.10)
    low_gpu_utilization_percent: float = 40.0  # mean GPU utilization below this % ...
    low_gpu_utilization_epochs: int = 2  # ... for this many consecutive epochs
    step_time_outlier_ratio: float = 10.0  # step_time_max / step_time_p50, from the second epoch on
    straggler_ratio: float = 1.25  # a rank slower than 1.25 x the median of the other ranks
    stalled_seconds: float = 1800.0  # no data for this long (SageMaker StalledTrainingRule default)

    # --- profiler ---------------------------------------------------------------------------------------------
    profiler_hotspot_pct: float = 0.40  # one layer above 40 % of profiled time (guide 5.12)
    profiler_consistent_pct: float = 0.25  # one layer above 25 % ...
    profiler_consistent_epochs: int = 3  # ... in this many consecutive profiled epochs (reference 5.5)
    profiler_min_layers: int = 4  # models with fewer profiled layers always have a dominant one: not judged
    backward_dominance_pct: float = 0.45  # backward share of total CPU time (guide 5.13)
    fwd_bwd_min_ratio: float = 0.15  # forward / backward time below this (guide 5.14)

    # --- sustainability ---------------------------------------------------------------------------------------
    diminishing_returns_pct: float = 0.05  # marginal / cumulative improvement (guide 6.1)
    diminishing_returns_warn_epochs: int = 5  # consecutive epochs before the info becomes a warning
    early_stopping_patience: int = 3  # epochs without improvement past the best one (guide 6.2, EarlyStopping)
    early_stopping_min_delta_pct: float = 0.001  # relative improvement needed to count as a new best
    over_parameterized_ratio: float = 10.0  # param % / compute % (guide 6.4)
    over_parameterized_min_param_pct: float = 0.10  # only layers holding at least 10 % of the parameters
    compute_inefficient_ratio: float = 10.0  # compute % / param % (guide 6.5) ...
    compute_inefficient_min_compute_pct: float = 0.10  # ... for layers using at least 10 % of compute
    compute_inefficient_warn_ratio: float = 100.0  # warning instead of info above this ratio ...
    compute_inefficient_warn_compute_pct: float = 0.25  # ... and this compute share
    device_cuda_cpu_ratio: float = 0.1  # profiled CUDA time / CPU time below this on a GPU run (reference 5.5)
    carbon_spike_ratio: float = 10.0  # epoch CO2 above 10 x mean of previous epochs (reference 5.5)
    wasted_carbon_warn_pct: float = 0.20  # wasted CO2 share above which wasted_carbon is a warning
    gpu_idle_utilization_percent: float = 20.0  # GPU powered but below this % utilization (reference 5.5)
    cpu_dominant_energy_ratio: float = 5.0  # CPU energy above 5 x GPU energy (reference 5.5)

    # --- layer health -----------------------------------------------------------------------------------------
    dead_layer_zero_fraction: float = 0.5  # fraction of units always exactly zero (SageMaker DeadRelu 50 %) ...
    dead_layer_epochs: int = 2  # ... in this many consecutive epochs (one epoch may be init noise). A warning;
    # info while the loss still improves (loss_plateau_min_improvement_pct over loss_plateau_window epochs, train or
    # validation): dead units are common in healthy ReLU nets (56 % of an easy task's 64 hidden units, issue 19) ...
    dead_layer_min_batches: int = 4  # ... judged on at least this many sampled batches over those epochs (one
    # batch of label-sorted data leaves most units of one class's path at zero: 67 % read dead where 3-11 % are);
    # fewer give an info at most
    dead_layer_whole_fraction: float = 1.0  # ... critical only when this share of the layer's units is dead (no
    # unit ever active) and the loss has stopped improving (ARCHITECTURE.md, severities)
    vanishing_gradient_norm: float = 1e-7  # mean gradient norm (SageMaker VanishingGradient) ...
    vanishing_gradient_epochs: int = 2  # ... for this many consecutive epochs (reference 5.5)
    depth_gradient_ratio: float = 100.0  # last-layer / first-layer gradient norm (reference 5.5)
    frozen_output_var: float = 1e-8  # activation variance of batch means (reference 5.5) ...
    frozen_output_rel_var: float = 1e-10  # ... and below this fraction of the activation variance ...
    frozen_output_epochs: int = 2  # ... in this many consecutive epochs. On real runs (tests/faults) the absolute
    # limit alone flagged healthy conv layers: a batch mean over ~10^5 values barely moves, and with two sampled
    # batches per epoch two close means give 1e-13. A frozen layer's relative variance is float rounding (< 1e-13)
    activation_collapse_std: float = 1e-5  # activation std ...
    activation_collapse_epochs: int = 2  # ... for this many consecutive epochs (reference 5.5)
    redundant_correlation: float = 0.95  # activation correlation of consecutive equal-width layers (guide 6.10)
    saturated_fraction: float = 0.5  # fraction of saturated units (SageMaker SaturatedActivation 50 %)

    # --- architecture -----------------------------------------------------------------------------------------
    fc_dominates_pct: float = 0.92  # one Linear holding > 92 % of the parameters in a CNN (guide 7.1)
    conv_bottleneck_pct: float = 0.60  # one conv holding > 60 % of the parameters (guide 7.2)
    missing_pooling_convs: int = 3  # consecutive convs without pooling or stride (guide 7.3)
    large_kernel_size: int = 7  # kernel side (guide 7.4) ...
    large_kernel_min_input: int = 64  # ... judged only for inputs smaller than this side (or unknown, not stem)
    grayscale_max_channels: int = 32  # first conv from 1 channel to more than this (guide 7.5)
    attention_min_head_dim: int = 16  # head dimension below this is info (guide 11.1)
    embedding_dim_vocab_ratio: float = 1.0  # embedding_dim / num_embeddings above this (guide 11.1)
    rnn_max_layers: int = 4  # stacked recurrent layers (guide 11.1)
    dropout_max_p: float = 0.6  # excessive_dropout: a Dropout dropping more than this share of its units (0.9 is
    # TensorFlow 1's keep_prob=0.9 passed as PyTorch's p: nine units in ten silenced at every step)

    # --- programming bugs, from the run's facts (atlas_callback/_facts.py) ---------------------------------------
    frozen_share: float = 0.9  # frozen_backbone: at least this share of the parameters has requires_grad=False
    # (and this share of the frozen weights checked is still within the default init bound 1/sqrt(fan_in)) ...
    frozen_chance_share: float = 0.8  # ... and the loss stays at or above this share of ln(classes) ...
    frozen_epochs: int = 2  # ... for this many epochs ...
    frozen_min_parameters: int = 1000  # ... in a model of at least this many parameters
    uncleared_grad_share: float = 0.5  # missing_zero_grad: the share of the watched optimizer steps (the first 16)
    # whose incoming gradient found the previous one still in .grad (0 in a loop that clears them; ~1 without)
    double_softmax_accuracy: float = 0.8  # double_softmax: outputs that are probabilities (rows sum to one) fed to
    # a loss that stays at or above log(1 + (k-1)/e), the floor of cross_entropy on probabilities, while validation
    # accuracy reaches this ...
    double_softmax_floor_margin: float = 0.05  # ... the loss within this share below that floor still counts
    lr_collapse_ratio: float = 1e-3  # lr_schedule_collapse: the LR below this share of where it started ...
    lr_collapse_stalled_ratio: float = 0.05  # ... or below this share while the training loss has stopped
    # improving (less than loss_plateau_min_improvement_pct since the epoch before) ...
    lr_collapse_run_share: float = 0.5  # ... within this share of max_epochs (epoch 1 at most when unknown): a
    # cosine or linear decay reaches its floor only at the end
    unnormalized_input_scale: float = 10.0  # unnormalized_inputs: the first batches' float inputs have a mean or
    # standard deviation beyond this (raw pixels: mean ~110, std ~70; standardised data: 0 and 1)
    unshuffled_class_mix: float = 0.5  # unshuffled_data: the classes per batch below this share of what a random
    # batch of that size would hold (k(1 - (1 - 1/k)^b) for k classes, batch b) ...
    unshuffled_min_batches: int = 4  # ... over at least this many of the first batches
    eval_mode_share: float = 0.5  # eval_mode_training: this share of an epoch's training steps ran in eval mode
    batchnorm_min_batch: int = 8  # batchnorm_tiny_batch: per-device batches below this with BatchNorm layers
    # (batch statistics of so few samples are noise; Wu & He 2018, Group Normalization)
    unused_parameter_share: float = 0.01  # unused_parameters: a warning when the parameters that never received a
    # gradient hold this share of the trainable ones (an info below)
    grad_spike_ratio: float = 10.0  # missing_grad_clipping: an epoch's largest gradient norm this many times its
    # mean, in a recurrent or attention model trained without clipping

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_value(f.name, f.type, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every threshold name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, Any] | None = None, *, base: Thresholds | None = None) -> Thresholds:
        """Defaults (or ``base``) with ``overrides`` applied.

        Raises :class:`ThresholdError` naming the key for an unknown key (listing the allowed ones), a value of the
        wrong type, or an impossible value (negative, NaN).
        """
        start = base if base is not None else cls()
        if not overrides:
            return start
        if not isinstance(overrides, Mapping):
            raise ThresholdError(f"threshold overrides must be a mapping, got {type(overrides).__name__}")
        allowed = cls.names()
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in allowed:
                raise ThresholdError(
                    f"unknown threshold {key!r}; allowed: {', '.join(allowed)}"
                )
            f_type = next(f.type for f in dataclasses.fields(cls) if f.name == key)
            if f_type == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            changes[key] = value
        return dataclasses.replace(start, **changes)

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def pick(self, *names: str) -> dict[str, float | int]:
        """The named thresholds as a dict, for an issue's ``thresholds`` field."""
        return {name: getattr(self, name) for name in names}


def _check_value(name: str, type_name: object, value: object) -> None:
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ThresholdError(f"threshold {name!r} must be an int, got {value!r}")
        if value < 0:
            raise ThresholdError(f"threshold {name!r} must be >= 0, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ThresholdError(f"threshold {name!r} must be a number, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ThresholdError(f"threshold {name!r} must be a non-negative number, got {value!r}")
