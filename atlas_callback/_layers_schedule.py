"""When the layer-health channel samples a step: every ``every_n_steps``-th step, stretched to a multiple of it when
sampling that often would take more than ``cost_budget`` of training time (see `_layers`' docstring, "Cost
budget"). Pure bookkeeping of step numbers and timings: no torch, no hooks."""

from __future__ import annotations

import logging
import math
import time

logger = logging.getLogger("atlas_callback._layers")


class SamplingSchedule:
    """The sampling interval in force (`interval`, a multiple of `every_n_steps`) and the first step worth asking
    about (`due`). `start(step)` says whether a step is sampled (and records when); `finish(step, cost)` takes the
    CPU seconds the sampled step cost and stretches or relaxes the interval; `new_epoch()` makes the first eligible
    step of the next epoch sampled whatever the interval."""

    def __init__(self, every_n_steps: int, cost_budget: float | None) -> None:
        self.every_n_steps = every_n_steps
        self.cost_budget = cost_budget
        self.interval = every_n_steps
        self.due = 0  # `start` need not be called before this step: no step before it can be sampled
        self._next = 0  # the first step the interval allows to be sampled
        self._sampled_this_epoch = False
        self._cost_s: float | None = None  # smoothed cost of one sampled step
        self._step_s: float | None = None  # smoothed wall time of a step that is not sampled
        self._ref: tuple[float, int] | None = None  # (time, step) at the end of the last sampled step
        self._sampled_ever = False

    def new_epoch(self) -> None:
        self._sampled_this_epoch = False
        self.due = 0

    def _next_due(self, step: int) -> int:
        every = self.every_n_steps
        candidate = (step // every + 1) * every
        if self.interval == every or not self._sampled_this_epoch:
            return candidate
        return max(candidate, -(-self._next // every) * every)

    def should_sample(self, step: int) -> bool:
        if step % self.every_n_steps:
            return False
        return self.interval == self.every_n_steps or step >= self._next or not self._sampled_this_epoch

    def start(self, step: int, step_s: float | None = None, *, possible: bool = True) -> bool:
        """Whether ``step`` is sampled (never when not ``possible``). ``step_s``: the trainer's recent step time
        when it measures one; without it, estimated from the wall time between sampled steps."""
        now = time.perf_counter()
        if self._ref is None or (not self._sampled_ever and step - 1 != self._ref[1]) or step <= self._ref[1]:
            self._ref = (now, step - 1)  # (re-)anchor: a first call, a step number that jumped or went back
        if not possible or not self.should_sample(step):
            self.due = self._next_due(step)
            return False
        if step_s is None or not step_s > 0:
            ref_time, ref_step = self._ref
            if step - ref_step > 1:  # the mean wall time of the steps since the last sampled one (without hooks)
                step_s = (now - ref_time) / (step - ref_step - 1)
        if step_s is not None and step_s > 0:
            self._step_s = step_s if self._step_s is None else 0.5 * self._step_s + 0.5 * step_s
        self._sampled_ever = True
        self._sampled_this_epoch = True
        self._next = self.due = step + self.interval
        return True

    def finish(self, step: int, cost: float) -> None:
        """A sampled step ended, having cost ``cost`` CPU seconds of the training thread."""
        self._adapt(cost)
        self._ref = (time.perf_counter(), step)

    def _adapt(self, cost: float) -> None:
        """Stretch (or relax) the sampling interval so that sampling stays within the cost budget."""
        self._cost_s = cost if self._cost_s is None else 0.7 * self._cost_s + 0.3 * cost
        if self.cost_budget is None or self.cost_budget >= 1 or not self._step_s:  # 1: no limit
            return
        every = self.every_n_steps
        needed = self._cost_s / (self.cost_budget * self._step_s)  # steps per sample that keep the budget
        interval = max(every, math.ceil(needed / every) * every)
        if interval >= 2 * self.interval or interval * 2 <= self.interval:  # log real changes, not jitter
            logger.info("atlas layer health: a sampled step costs %.2f ms against %.2f ms per step; sampling every "
                        "%d steps (configured: %d) to stay within %.2g%% of training time", self._cost_s * 1e3,
                        self._step_s * 1e3, interval, every, self.cost_budget * 100)
        if interval != self.interval:
            self._next += interval - self.interval
            self.due = self._next
            self.interval = interval
