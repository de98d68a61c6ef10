"""Look-alikes of the programming-bug checks, from held-out programs the checks were not written against (a
regression loss on class indices, an exponential decay stepped per batch, label-sorted data whose loss jumps at
each class change)."""

from __future__ import annotations

from typing import Any

from diag_synth import classifier, epochs

from atlas_diagnostics import Issue, diagnose, rank_issues

SCHED = {"optimizers": [{"type": "SGD", "groups": [{"lr": 0.1, "params": 4}]}],
         "schedulers": [{"type": "ExponentialLR", "interval": "step", "frequency": 1}], "max_epochs": 8}


def checks(**kwargs: Any) -> dict[str, Issue]:
    return {i.check: i for i in diagnose(**kwargs) if i.active}


def test_accuracy_at_chance_while_the_loss_falls_names_the_loss() -> None:
    # MSE on class indices: the loss falls 2.6 -> 0.04, validation accuracy stays at chance (5 classes)
    kw = dict(architecture=classifier(5), epochs=epochs(3, train_mean=[2.64, 0.3, 0.044],
                                                          val={"val_loss": 0.05, "val_acc": 0.19}))
    found = checks(**kw)
    assert found["loss_at_chance"].title == "Accuracy at chance while the loss falls"
    assert "F.cross_entropy" in found["loss_at_chance"].suggestion
    learning = checks(architecture=classifier(5), epochs=epochs(3, train_mean=[2.64, 0.3, 0.044],
                                                                 val={"val_loss": 0.05, "val_acc": 0.9}))
    assert "loss_at_chance" not in learning


def test_a_schedule_that_fell_20x_collapses_only_with_the_loss_stalled() -> None:
    first = {**SCHED}
    stalled = checks(epochs=epochs(3, lr=[(0.03,), (0.004,), (0.0006,)], train_mean=[1.2, 1.1, 1.099],
                                   facts=lambda e: first if e == 0 else {}))
    assert "lr_schedule_collapse" in stalled
    falling = checks(epochs=epochs(3, lr=[(0.03,), (0.004,), (0.002,)], train_mean=[1.2, 0.9, 0.6],
                                   facts=lambda e: first if e == 0 else {}))
    assert "lr_schedule_collapse" not in falling  # a steep schedule while the model still learns


def test_unshuffled_data_explains_the_loss_jump_at_a_class_change() -> None:
    def make(check: str, severity: str, epoch: int, step: int | None = None) -> Issue:
        return Issue(check=check, severity=severity, category="loss", title=check, description=check,
                     suggestion="s", step=step, first_seen_epoch=epoch, last_seen_epoch=epoch)

    ranked = rank_issues([make("loss_explosion", "critical", 0, step=20), make("unshuffled_data", "warning", 0)])
    assert ranked[0].check == "unshuffled_data" and "loss_explosion" in ranked[0].explains


def test_dead_units_are_judged_on_several_batches() -> None:
    from diag_synth import layers

    from atlas_diagnostics import Engine

    flat = [2.0, 2.0, 2.0, 2.0]  # a stalled loss: a dead layer would be a warning
    one = checks(epochs=epochs(4, deep=True, train_mean=flat, val={"val_loss": 2.1},
                               layers=layers(fc2={"zero_fraction": 0.8, "samples": 1})))
    assert one["dead_layers"].severity == "info" and "too few" in one["dead_layers"].description
    many = checks(epochs=epochs(4, deep=True, train_mean=flat, val={"val_loss": 2.1},
                                layers=layers(fc2={"zero_fraction": 0.8, "samples": 6})))
    assert many["dead_layers"].severity == "warning"
    assert many["dead_layers"].evidence["sampled_batches"] == 12
    del Engine


def test_a_weight_jump_between_sampled_gradient_norms_is_a_warning() -> None:
    from diag_synth import layers

    jump = checks(epochs=epochs(3, deep=True, layers=layers(fc2={"update_ratio": 0.01, "update_ratio_max": 3.0})))
    issue = jump["exploding_gradients"]
    assert issue.severity == "warning" and issue.layer == "fc2" and issue.evidence["update_ratio_max"] == 3.0
    calm = checks(epochs=epochs(3, deep=True, layers=layers(fc2={"update_ratio": 0.01, "update_ratio_max": 0.05})))
    assert "exploding_gradients" not in calm
