"""The report's classification plot draws chance for the classes the cycle had, not 1/3 for all (issue 23)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agent_pipeline.insight.report import fold_metrics_figure

FOLDS = [{"fold": k, "accuracy": 0.5, "balanced_accuracy": 0.49, "baseline_accuracy": 0.56} for k in (1, 2, 3, 4)]
# The trainer's class distribution always lists all three classes; a two-class model has a HOLD of 0
TWO_CLASS_DISTRIBUTION = {"train": {"SELL": 410, "HOLD": 0, "BUY": 530}, "test": {"SELL": 80, "HOLD": 0, "BUY": 99}}
THREE_CLASS_DISTRIBUTION = {"train": {"SELL": 300, "HOLD": 310, "BUY": 330}}


def chance_lines(summary: dict[str, Any]) -> list[tuple[str, float]]:
    figure = fold_metrics_figure(summary)
    assert figure is not None
    (ax,) = figure.axes
    return [(str(line.get_label()), float(np.asarray(line.get_ydata(), dtype=float)[0])) for line in ax.get_lines()]


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"n_classes": 2, "class_distribution": TWO_CLASS_DISTRIBUTION}, [("chance (1/2)", 0.5)]),
        ({"class_distribution": TWO_CLASS_DISTRIBUTION}, [("chance (1/2)", 0.5)]),  # a row older than n_classes
        ({"n_classes": 3, "class_distribution": THREE_CLASS_DISTRIBUTION}, [("chance (1/3)", pytest.approx(1 / 3))]),
        ({}, []),  # nothing says how many classes: no chance is claimed
    ],
)
def test_the_fold_plot_draws_chance_at_one_over_the_cycles_classes(summary: dict, expected: list) -> None:
    assert chance_lines({**summary, "folds": FOLDS}) == expected


def test_the_fold_plot_title_names_its_folds_and_classes() -> None:
    figure = fold_metrics_figure({"n_classes": 2, "folds": FOLDS})
    assert figure is not None
    assert figure.axes[0].get_title() == "Walk-forward out-of-sample classification per fold (4 folds, 2 classes)"
