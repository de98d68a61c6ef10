"""Profiler checks: profiler_hotspot, consistent_profiler_hot, backward_dominance, fwd_bwd_ratio.

A profiler check says nothing about an epoch that was not profiled (no verdict: earlier issues stay as they are).
"""

from __future__ import annotations

from ._issue import Finding
from ._registry import rule
from ._state import Context, finite


@rule("profiler_hotspot", severity="warning", category="profiler")
def profiler_hotspot(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    prof = cur.profiler
    if prof is None or not prof.per_layer:
        return None
    th = ctx.th
    if len(prof.per_layer) < th.profiler_min_layers:
        return []
    return [Finding(
        title="Compute hotspot",
        description=f"Layer {lt.name} took {lt.pct_total:.1f} % of the profiled time in epoch {cur.epoch} "
                    f"(limit {th.profiler_hotspot_pct * 100:g} %).",
        suggestion=f"Make `{lt.name}` cheaper: fewer features/channels, a depthwise-separable or low-rank version, "
                   "or `torch.compile(model)` to fuse its kernels.",
        metric_key="pct_total", metric_value=lt.pct_total, layer=lt.name,
        thresholds=th.pick("profiler_hotspot_pct", "profiler_min_layers"),
    ) for lt in prof.per_layer if lt.pct_total / 100.0 > th.profiler_hotspot_pct]


@rule("consistent_profiler_hot", severity="info", category="profiler")
def consistent_profiler_hot(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    if cur.profiler is None or not cur.profiler.per_layer:
        return None
    th = ctx.th
    n = th.profiler_consistent_epochs
    profiled = list(ctx.state.profiled)
    if len(profiled) < n or len(cur.profiler.per_layer) < th.profiler_min_layers:
        return []
    shares: dict[str, list[float]] = {}
    for rec in profiled:
        for lt in rec.profiler.per_layer:  # type: ignore[union-attr]
            shares.setdefault(lt.name, []).append(lt.pct_total / 100.0)
    out = []
    for name, values in shares.items():
        if len(values) < n or not all(v > th.profiler_consistent_pct for v in values):
            continue
        if values[-1] > th.profiler_hotspot_pct:
            continue  # already a hotspot; one issue is enough
        out.append(Finding(
            title="Consistently heavy layer",
            description=f"Layer {name} took more than {th.profiler_consistent_pct * 100:g} % of the profiled time "
                        f"in each of the last {n} profiled epochs (now {values[-1] * 100:.1f} %).",
            suggestion=f"`{name}` is where optimisation pays off first: profile it alone, try mixed precision "
                       "(`torch.autocast`) or a smaller width.",
            metric_key="pct_total", metric_value=values[-1] * 100, layer=name,
            thresholds=th.pick("profiler_consistent_pct", "profiler_consistent_epochs"),
        ))
    return out


@rule("backward_dominance", severity="info", category="profiler")
def backward_dominance(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    prof = cur.profiler
    if prof is None or not (finite(prof.total_bwd_us) and finite(prof.total_cpu_time_us)):
        return None
    total = prof.total_cpu_time_us
    if total <= 0:  # type: ignore[operator]
        return []
    share = prof.total_bwd_us / total  # type: ignore[operator]
    if share <= ctx.th.backward_dominance_pct:
        return []
    return [Finding(
        title="Backward pass dominates",
        description=f"The backward pass took {share * 100:.0f} % of the profiled CPU time in epoch {cur.epoch} "
                    f"(limit {ctx.th.backward_dominance_pct * 100:g} %).",
        suggestion="For large activations use gradient checkpointing: `from torch.utils.checkpoint import "
                   "checkpoint; x = checkpoint(self.block, x, use_reentrant=False)`; freeze layers you do not train.",
        metric_key="backward_share", metric_value=share, thresholds=ctx.th.pick("backward_dominance_pct"),
    )]


@rule("fwd_bwd_ratio", severity="warning", category="profiler")
def fwd_bwd_ratio(ctx: Context) -> list[Finding] | None:
    cur = ctx.epoch
    assert cur is not None
    prof = cur.profiler
    if prof is None or not (finite(prof.total_fwd_us) and finite(prof.total_bwd_us)):
        return None
    if prof.total_bwd_us <= 0:  # type: ignore[operator]
        return []
    ratio = prof.total_fwd_us / prof.total_bwd_us  # type: ignore[operator]
    limit = ctx.th.fwd_bwd_min_ratio
    if ratio >= limit:
        return []
    return [Finding(
        title="Extremely heavy backward pass",
        description=f"Forward/backward time ratio {ratio:.3f} in epoch {cur.epoch} (below {limit:g}): backward is "
                    f"{1 / ratio if ratio else float('inf'):.1f}x the forward.",
        suggestion="Look for an op with an expensive gradient (scatter/index_add, large embeddings with dense "
                   "gradients: `nn.Embedding(..., sparse=True)`), or hooks that run in backward.",
        metric_key="fwd_bwd_ratio", metric_value=ratio, thresholds=ctx.th.pick("fwd_bwd_min_ratio"),
    )]
