"""The layer-health channel's epoch aggregate: from what the sampled steps gathered on the device (one vector of
numbers per step, with a key per number, and the per-unit counts of each site) to the epoch's `LayerHealth`. One
copy to the host for the whole epoch; every definition is in `_layers`' docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from atlas_proto.v1 import telemetry_pb2 as tpb

Keys = list[tuple[str, str]]  # (site, field) of each number of a step's vector


@dataclass
class Units:
    """Per-unit state of one site, on the device."""

    width: int
    nonzero: torch.Tensor  # per unit: how many outputs were not exactly zero
    sat_count: torch.Tensor | None = None
    positions: int = 0


def aggregate(pending: list[tuple[torch.Tensor, Keys]], units: dict[str, Units | None], layer_names: list[str],
              saturated_share: float, sparse_vals: list[torch.Tensor], sparse_keys: Keys) -> tpb.LayerHealth:
    """The epoch's LayerHealth from the steps' vectors (`pending`), the per-unit state (`units`), the weights'
    sparsity now, in the order of `layer_names` (then any other site that has numbers)."""
    unit_keys: Keys = []
    unit_vals: list[torch.Tensor] = []
    for key, site_units in units.items():
        if site_units is None:
            continue
        unit_keys.append((key, "zero"))
        unit_vals.append((site_units.nonzero == 0).float().mean())
        if site_units.sat_count is not None and site_units.positions:
            unit_keys.append((key, "sat"))
            share = site_units.sat_count / site_units.positions
            unit_vals.append((share >= saturated_share).float().mean())
    if sparse_vals:
        device = unit_vals[0].device if unit_vals else sparse_vals[0].device
        unit_vals += [v.to(device) for v in sparse_vals]
        unit_keys += sparse_keys
    chunks = [t for t, _ in pending] + ([torch.stack(unit_vals)] if unit_vals else [])
    if not chunks:
        return tpb.LayerHealth()
    device = chunks[0].device
    values = torch.cat([c.to(device) for c in chunks]).cpu().tolist()  # the one host copy of the epoch
    series, ratios = _series(pending, values, unit_keys)
    return _message(series, ratios, layer_names)


def _series(pending: list[tuple[torch.Tensor, Keys]], values: list[float],
            unit_keys: Keys) -> tuple[dict[tuple[str, str], list[float]], dict[str, list[float]]]:
    """Per (site, field): one number per sampled step; per layer: its update ratio in each step that moved."""
    series: dict[tuple[str, str], list[float]] = {}
    step_updates: list[list[tuple[str, float, float]]] = []  # per step boundaries for the update ratios
    offset = 0
    for _, ks in pending:
        gsq: dict[tuple[str, int], float] = {}
        dsq: dict[str, float] = {}
        wsq: dict[str, float] = {}
        in_step: dict[tuple[str, str], list[float]] = {}
        for i, (site, fld) in enumerate(ks):
            v = values[offset + i]
            if fld == "dw":
                dsq[site] = dsq.get(site, 0.0) + v * v
            elif fld == "w":
                wsq[site] = wsq.get(site, 0.0) + v * v
            elif fld.startswith("g:"):
                gsq[site, int(fld[2:])] = gsq.get((site, int(fld[2:])), 0.0) + v * v
            else:
                in_step.setdefault((site, fld), []).append(v)
        # a layer that ran twice in one step (two forward passes: SAM, R-Drop, consistency losses) counts once
        # per step: the variance of batch means must compare batches, not two passes over one batch
        for k, vs in in_step.items():
            series.setdefault(k, []).append(sum(vs) / len(vs))
        for (site, passes), total in gsq.items():  # root mean square over the step's backward passes
            series.setdefault((site, "gnorm"), []).append(math.sqrt(total / passes))
        step_updates.append([(site, dsq.get(site, math.nan), w) for site, w in wsq.items()])
        offset += len(ks)
    for i, k in enumerate(unit_keys):
        series.setdefault(k, []).append(values[offset + i])
    ratios: dict[str, list[float]] = {}
    for moved in step_updates:
        if not any(d > 0 for _, d, _ in moved):  # a step where nothing moved had no optimiser step
            continue
        for site, d, w in moved:
            if w > 0 and math.isfinite(d):
                ratios.setdefault(site, []).append(math.sqrt(d) / math.sqrt(w))
    return series, ratios


def _message(series: dict[tuple[str, str], list[float]], ratios: dict[str, list[float]],
             layer_names: list[str]) -> tpb.LayerHealth:
    out = tpb.LayerHealth()
    names = list(layer_names) + [s for s, _ in series if "\0" not in s and s not in layer_names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        act_key = name + "\0act" if (name + "\0act", "mean") in series else name
        means = series.get((act_key, "mean"), [])
        variances = series.get((act_key, "var"), [])
        stats = tpb.LayerStats(name=name, samples=len(means))
        if means:
            mu = sum(means) / len(means)
            var_means = sum((m - mu) ** 2 for m in means) / len(means)
            stats.activation_mean = mu
            stats.activation_std = math.sqrt(max(sum(variances) / len(variances) + var_means, 0.0))
            if len(means) >= 2:
                stats.activation_var_of_means = var_means
        _set_last(stats, "zero_fraction", series.get((act_key, "zero")))
        _set_last(stats, "saturated_fraction", series.get((act_key, "sat")))
        _set_mean(stats, "gradient_norm_mean", series.get((name, "gnorm")))
        _set_last(stats, "weight_sparsity", series.get((name, "sparsity")))
        _set_mean(stats, "update_ratio", ratios.get(name))
        _set_max(stats, "update_ratio_max", ratios.get(name))
        if means or stats.HasField("gradient_norm_mean"):  # a layer that never ran has no row
            out.layers.append(stats)
    for (pair, fld), vals in series.items():
        if fld != "corr":
            continue
        finite = [v for v in vals if math.isfinite(v)]
        if finite:
            a, b = pair.split("\0", 1)
            out.correlations.add(layer_a=a, layer_b=b, correlation=sum(finite) / len(finite))
    return out


def _set_last(stats: tpb.LayerStats, fld: str, vals: list[float] | None) -> None:
    if vals and math.isfinite(vals[-1]):
        setattr(stats, fld, vals[-1])


def _set_max(stats: tpb.LayerStats, fld: str, vals: list[float] | None) -> None:
    finite = [v for v in vals or () if math.isfinite(v)]
    if finite:
        setattr(stats, fld, max(finite))


def _set_mean(stats: tpb.LayerStats, fld: str, vals: list[float] | None) -> None:
    finite = [v for v in vals or () if math.isfinite(v)]
    if finite:
        setattr(stats, fld, sum(finite) / len(finite))
