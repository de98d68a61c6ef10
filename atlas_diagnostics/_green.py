"""The Green-AI account of a run (diagnostics guide section 9.3, ``SustainabilityInsight``), plus energy cost,
CO2 equivalents and a grade.

Grade bands, on the share of compute spent after the optimal stopping epoch (``wasted_compute_pct``):

    A  < 5 %      B  < 15 %      C  < 30 %      D  < 50 %      F  >= 50 %

then one grade lower when the parameter efficiency score is known and below 50 (half the parameters sit in dead,
vanishing, frozen, redundant or over-parameterized layers). ``None`` before the first epoch.

CO2 equivalents use the US EPA Greenhouse Gas Equivalencies Calculator factors ("Calculations and References",
https://www.epa.gov/energy/greenhouse-gases-equivalencies-calculator-calculations-and-references):
3.93e-4 t CO2e per mile driven by an average gasoline passenger vehicle (0.2442 kg per km), 1.24e-5 t CO2 per
smartphone charged, 8.887e-3 t CO2 per gallon of gasoline burned (2.348 kg per litre), 0.060 t CO2 sequestered by
one urban tree seedling grown for 10 years.

A run whose loss diverged (``nan_loss``, or a critical ``loss_explosion``) is graded F whatever its optimal stop
says: its compute produced no usable model (``notes`` says so).

Cost prices CO2 at the EU ETS allowance price, default EUR 50 per tonne (configurable: ``eur_per_tonne``).

A figure that comes out beyond what a float holds (a broken reading such as 1e308 kg of CO2 in one epoch makes the
total infinite) stays ``inf`` or ``nan`` (``"Infinity"``/``"NaN"`` in ``to_dict``) and ``notes`` names it, so a
reader that shows it as null can say why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ._codec import encode
from ._issue import diverged

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["CO2_FACTORS_KG", "DEFAULT_EUR_PER_TONNE", "SustainabilityInsight", "green_grade", "green_insight"]

DEFAULT_EUR_PER_TONNE = 50.0

#: kg CO2 per unit of each equivalent (EPA, see the module docstring).
CO2_FACTORS_KG: dict[str, float] = {
    "km_driven_by_car": 0.393 / 1.609344,  # 3.93e-4 t CO2e per mile
    "smartphone_charges": 0.0124,  # 1.24e-5 t CO2 per charge
    "litres_of_gasoline": 8.887 / 3.785411784,  # 8.887e-3 t CO2 per US gallon
    "tree_seedlings_grown_10_years": 60.0,  # 0.060 t CO2 sequestered per seedling (negative of emissions)
}

_BANDS = ((5.0, "A"), (15.0, "B"), (30.0, "C"), (50.0, "D"))
_GRADES = "ABCDF"


@dataclass(frozen=True, slots=True)
class SustainabilityInsight:
    """Early stopping, totals, layer health and carbon of one run. Unknown values are ``None``."""

    optimal_stop_epoch: int | None = None
    optimal_stop_basis: str | None = None  # val_loss, train_loss or diminishing_returns
    wasted_epochs: int | None = None
    wasted_compute_pct: float | None = None
    wasted_duration_seconds: float | None = None
    total_training_duration_seconds: float | None = None
    total_samples_processed: int | None = None
    dead_layers: list[str] = field(default_factory=list)
    vanishing_gradient_layers: list[str] = field(default_factory=list)
    frozen_output_layers: list[str] = field(default_factory=list)
    redundant_layer_pairs: list[dict[str, str]] = field(default_factory=list)
    parameter_efficiency_score: float | None = None
    total_co2_kg: float | None = None
    total_energy_kwh: float | None = None
    co2_per_epoch_avg_kg: float | None = None
    co2_per_1k_samples_kg: float | None = None
    avg_power_draw_watts: float | None = None
    wasted_co2_kg: float | None = None
    wasted_energy_kwh: float | None = None
    eur_per_tonne: float = DEFAULT_EUR_PER_TONNE
    total_cost_eur: float | None = None
    wasted_cost_eur: float | None = None
    grade: str | None = None
    co2_equivalents: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # figures that overflowed (inf or nan), named

    def to_dict(self) -> dict[str, Any]:
        out = encode(asdict(self))
        assert isinstance(out, dict)
        return out


def green_grade(wasted_compute_pct: float | None, parameter_efficiency_score: float | None = None) -> str | None:
    """The A-F grade of the module docstring's bands."""
    if wasted_compute_pct is None:
        return None
    grade = next((g for limit, g in _BANDS if wasted_compute_pct < limit), "F")
    if parameter_efficiency_score is not None and parameter_efficiency_score < 50:
        grade = _GRADES[min(len(_GRADES) - 1, _GRADES.index(grade) + 1)]
    return grade


def green_insight(engine: Engine, *, eur_per_tonne: float = DEFAULT_EUR_PER_TONNE) -> SustainabilityInsight:
    """The :class:`SustainabilityInsight` of the run the engine has seen so far. O(layers), not O(epochs)."""
    if isinstance(eur_per_tonne, bool) or not isinstance(eur_per_tonne, (int, float)) \
            or not math.isfinite(eur_per_tonne) or eur_per_tonne < 0:
        raise ValueError(f"`eur_per_tonne` must be a non-negative number, got {eur_per_tonne!r}")
    st = engine.state
    cur = st.current
    if cur is None:
        return SustainabilityInsight(eur_per_tonne=float(eur_per_tonne))
    totals = st.total_at(cur.epoch)
    assert totals is not None
    stop, basis = st.optimal_stop()
    wasted_epochs = wasted_pct = wasted_dur = wasted_co2 = wasted_kwh = None
    if stop is not None:
        stop_t = st.total_at(stop)
        wasted_epochs = max(0, cur.epoch - stop)
        if stop_t is not None and totals.has_duration and totals.duration > 0:
            wasted_dur = totals.duration - stop_t.duration
            wasted_pct = 100.0 * wasted_dur / totals.duration
        else:
            wasted_pct = 100.0 * wasted_epochs / st.epochs_seen
        if stop_t is not None and totals.has_carbon:
            wasted_co2 = totals.co2_kg - stop_t.co2_kg
            wasted_kwh = totals.energy_kwh - stop_t.energy_kwh
    elif st.epochs_seen:
        wasted_epochs, wasted_pct = 0, 0.0
        wasted_dur = 0.0 if totals.has_duration else None
        if totals.has_carbon:
            wasted_co2 = wasted_kwh = 0.0

    total_co2 = totals.co2_kg if totals.has_carbon else None
    total_kwh = totals.energy_kwh if totals.has_carbon else None
    if total_co2 is None and cur.carbon is not None and cur.carbon.cumulative_co2_kg is not None:
        total_co2, total_kwh = cur.carbon.cumulative_co2_kg, cur.carbon.cumulative_energy_kwh

    issues = [i for i in engine.issues() if i.active]

    def layers_of(check: str) -> list[str]:
        return sorted({i.layer for i in issues if i.check == check and i.layer})

    pairs = [dict(zip(("layer_a", "layer_b"), (i.key or "").split("|", 1))) for i in issues
             if i.check == "redundant_layers"]
    efficiency = _parameter_efficiency(engine, issues)
    price = float(eur_per_tonne) / 1000.0  # EUR per kg
    figures: dict[str, Any] = dict(
        optimal_stop_epoch=stop,
        optimal_stop_basis=basis if stop is not None else None,
        wasted_epochs=wasted_epochs,
        wasted_compute_pct=wasted_pct,
        wasted_duration_seconds=wasted_dur,
        total_training_duration_seconds=totals.duration if totals.has_duration else None,
        total_samples_processed=totals.samples if totals.has_samples else None,
        dead_layers=layers_of("dead_layers"),
        vanishing_gradient_layers=layers_of("vanishing_gradients"),
        frozen_output_layers=layers_of("frozen_output_layers"),
        redundant_layer_pairs=pairs,
        parameter_efficiency_score=efficiency,
        total_co2_kg=total_co2,
        total_energy_kwh=total_kwh,
        co2_per_epoch_avg_kg=total_co2 / st.co2_count if total_co2 is not None and st.co2_count else None,
        co2_per_1k_samples_kg=(1000.0 * total_co2 / totals.samples
                               if total_co2 is not None and totals.has_samples and totals.samples else None),
        avg_power_draw_watts=st.power_sum / st.power_count if st.power_count else None,
        wasted_co2_kg=wasted_co2,
        wasted_energy_kwh=wasted_kwh,
        eur_per_tonne=float(eur_per_tonne),
        total_cost_eur=total_co2 * price if total_co2 is not None else None,
        wasted_cost_eur=wasted_co2 * price if wasted_co2 is not None else None,
        grade=green_grade(wasted_pct, efficiency),
        co2_equivalents=({name: total_co2 / kg for name, kg in CO2_FACTORS_KG.items()}
                         if total_co2 is not None else {}),
    )
    notes = _overflow_notes(figures)
    if diverged(engine.issues()) and figures["grade"] is not None:
        figures["grade"] = "F"  # the compute went into a loss that diverged: no usable model came of it
        notes.append("grade F: the loss diverged (a non-finite loss, or an explosion past where the run started)")
    return SustainabilityInsight(**figures, notes=notes)


def _overflow_notes(figures: dict[str, Any]) -> list[str]:
    """One note naming the figures that are not finite (an overflow of out-of-scale readings), one for the CO2
    equivalents."""
    notes: list[str] = []
    bad = [key for key, value in figures.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        notes.append(f"{', '.join(bad)}: beyond what a number holds (the run's readings add up past 1.8e308: a broken "
                     "carbon, energy or time reading?)")
    bad = [name for name, value in figures["co2_equivalents"].items() if not math.isfinite(value)]
    if bad:
        notes.append(f"co2_equivalents {', '.join(bad)}: beyond what a number holds")
    return notes


_WASTEFUL = ("dead_layers", "vanishing_gradients", "frozen_output_layers", "redundant_layers",
             "over_parameterized_layer", "activation_collapse")


def _parameter_efficiency(engine: Engine, issues: list[Any]) -> float | None:
    """100 x the share of parameters outside layers flagged dead, vanishing, frozen, collapsed, redundant or
    over-parameterized; ``None`` without an architecture or without any layer or profiler data to judge by."""
    arch, st = engine.architecture, engine.state
    if arch is None or not (st.layer_health_seen or st.profiled):
        return None
    shares = arch.param_share()
    if not shares:
        return None
    flagged = {i.layer for i in issues if i.check in _WASTEFUL and i.layer}
    wasted = sum(shares.get(name, 0.0) for name in flagged)
    return round(100.0 * max(0.0, 1.0 - wasted), 2)
