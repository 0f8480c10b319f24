"""The offline designer's search space: the strategy grammar as Optuna distributions.

`space()` draws which indicators (scale-free only, so one cut rule suits every instrument) and their periods, two
or three fuzzy sets cut at quantiles of each indicator's own values, the ZigZag labels, the model's size, dropout
and learning rate, and the confidence threshold. Its bounds, and why:
- periods from 2 bars and the close's distance from its SMA/EMA: a one-day edge needs a one-day feature; ATR is
  drawn like the others (it helps where volatility regimes make HOLD learnable, and is noise where they do not);
- ZigZag threshold = `label_k * volatility * sqrt(lookahead)`: `label_k` 0.05-1.5 and a lookahead of 2-60 reach
  from the next bar's direction to a 60-bar swing; `label_hold` False drops the HOLD class, which a model cannot
  learn on a series of constant volatility (three classes failed the training gate on every planted edge);
- the confidence threshold: at the no-information level (1/2 with two classes, 1/3 with three), or, with
  `hysteresis`, a margin of 0.02-0.12 above it. A bar whose top probability is below the threshold keeps the
  position, so the margin is a hysteresis. A trend edge needs it: with two classes and no margin every change of
  the predicted class is a trade, those whipsaws took the win rate to 26%, and the default backtest gate (45%)
  stopped every trend design, where a margin of 0.05-0.10 keeps the calls that mean something (win rate 46-55%,
  walk-forward Sharpe 1.3-1.4 against 0.9). A one-day reversal needs none: its probabilities sit within a few
  hundredths of 1/2, and a margin drawn for every design (uniform 0-0.12) took reversal 1.5 from 2 of 3
  discoveries to 0 of 3. The old range, 0.34-0.5, could not express a margin for two classes at all.
- the minimum hold, 1-30 bars, drawn with `hysteresis` only: a trend call kept for 10-20 bars wins more often
  (win rates of 29-48% become 41-58%, at least 45% in 25 of 32 rows, on trend 1.5, seeds 2 and 3,
  `probe_power.py --only trend --min-holds 1,5,10,20`), at some cost in Sharpe, which lets a trend design through
  the default win-rate gate (45%) that stopped it.
- on a close-only series (issue 24: adjusted closes, no open, high, low or volume) only the indicators that read the
  close alone are drawn (`usable_indicators`): ATR, stochastic, Williams %R, CCI and ADX need highs and lows, and
  nothing invents them.
The figures behind each choice are in the README (Research power) and `bench/probe_power.py`. Volatility and the
fuzzy cut points come from the research period only, never the lockbox.
"""

from __future__ import annotations

import math
import re
from functools import cache, lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from agent_pipeline.engine.data import is_close_only, load_bars
from agent_pipeline.engine.features import PRIMARY
from agent_pipeline.engine.pooled import research_period, universe_series
from agent_pipeline.engine.series_cut import cut_at, cut_series, series_end
from agent_pipeline.engine.strategy import CLOSE_INDICATORS
from agent_pipeline.engine.walkforward import lockbox_start
from agent_pipeline.llm.catalogue import DataSeries

if TYPE_CHECKING:
    import optuna

# The research bars a design is drawn over: one series' bars, or a universe's, one frame per symbol.
Sample: TypeAlias = pd.DataFrame | tuple[pd.DataFrame, ...]  # noqa: UP040 - Python 3.11

# Indicators a strategy may use (all scale-free: the same cut rule suits every instrument). `sma` and `ema` are
# the close's distance from its average: with period 2 the last bar's return, with 20 a momentum (issue 14).
INDICATORS = ("atr", "rsi", "stochastic", "williams_r", "cci", "adx", "roc", "sma", "ema")
# The indicators beside ATR.
OSCILLATORS = INDICATORS[1:]
# The indicators a close-only series allows (they read the close alone), in the order above.
CLOSE_ONLY_INDICATORS = tuple(kind for kind in INDICATORS if kind in CLOSE_INDICATORS)
# Fixed training choices: 30 epochs, batch 64 keep a cycle to about a minute on 2 CPU cores.
TRAINING = {"epochs": 30, "batch_size": 64, "early_stopping_patience": 6, "weight_decay": 0.0}


@cache
def space() -> dict[str, optuna.distributions.BaseDistribution]:
    """Every parameter of the grammar and its distribution (periods and sizes on a log scale)."""
    # lazy: keeps optuna off the CLI's and API's start-up path (the Claude designer and the study import this module)
    from optuna.distributions import CategoricalDistribution as Choice
    from optuna.distributions import FloatDistribution as Real
    from optuna.distributions import IntDistribution as Int

    params: dict[str, Any] = {}
    for kind in INDICATORS:  # periods from 2 bars: a one-day edge needs a one-day feature (issue 14)
        params |= {f"use_{kind}": Choice([False, True]), f"{kind}_period": Int(2, 60, log=True)}
    return params | {
        "fuzzy_sets": Choice([2, 3]),
        "fuzzy_width": Real(0.1, 0.45),  # the outer cuts sit at quantiles 0.5 -/+ width
        # threshold = label_k * volatility * sqrt(lookahead): near 0.05 the next bar decides, near 1 the horizon
        "label_k": Real(0.05, 1.5, log=True),
        "lookahead": Int(2, 60, log=True),
        "label_hold": Choice([True, False]),  # False: two classes, no HOLD (labels.py)
        "hidden": Int(16, 128, log=True),
        "layers": Int(1, 2),
        "dropout": Real(0.0, 0.4),
        "learning_rate": Real(1e-4, 1e-2, log=True),
        # the confidence threshold: 1/classes, or with hysteresis a margin above it (confidence_threshold)
        "hysteresis": Choice([False, True]),
        "confidence_margin": Real(0.02, 0.12),  # drawn only with hysteresis
        "min_hold": Int(1, 30, log=True),  # bars a position is kept at least; drawn only with hysteresis
    }


@lru_cache(maxsize=16)
def research_bars(
    symbol: str, timeframe: str, data_dir: Path | None, lockbox_fraction: float, end: str | None = None
) -> pd.DataFrame:
    """The series' research period: its bars up to `end` (the series' fixed end, `engine.series_cut`; None: all),
    before the lockbox (the last `lockbox_fraction` of those)."""
    bars = cut_at(load_bars(symbol, timeframe, data_dir), end)
    return bars.iloc[: lockbox_start(len(bars), lockbox_fraction)]


@lru_cache(maxsize=4)
def universe_research_bars(
    name: str, timeframe: str, data_dir: Path | None, lockbox_fraction: float, end: str | None = None
) -> tuple[pd.DataFrame, ...]:
    """A universe's research period: each symbol's bars on the common dates up to `end`, before its lockbox."""
    series = cut_series(universe_series(name, timeframe, data_dir), end)
    return tuple(research_period(series, lockbox_fraction).values())


def research_sample(symbol: str, timeframe: str, universe: bool, settings: Any) -> Sample:
    """The research period a design is drawn over: a series' bars, or a universe's symbols' bars, cut where the
    series' first cycle fixed its end (issue 27), so appended bars (forward bars) and lockbox bars never enter the
    cut points, the label volatility or the optimiser's view."""
    read = universe_research_bars if universe else research_bars
    end = fixed_end(symbol, timeframe, universe, settings)
    return read(symbol, timeframe, settings.data_dir, settings.lockbox_fraction, end)


def fixed_end(symbol: str, timeframe: str, universe: bool, settings: Any) -> str:
    """The series' research end: fixed by its first cycle (`store.series`), or, before any cycle fixed one, the end
    that cycle will fix (its last bar before any appended bar, `engine.series_cut.series_end`)."""
    from agent_pipeline.store.operations import get_store  # lazy: start-up cost (SQLAlchemy)
    from agent_pipeline.store.series import series_cut  # lazy: start-up cost (SQLAlchemy)

    cut = series_cut(get_store(settings.database_url), symbol=symbol, timeframe=timeframe)
    return cut.series_end if cut is not None else series_end(symbol, timeframe, settings.data_dir, universe=universe)


def build_document(
    trial: optuna.Trial, series: DataSeries, bars: Sample, *, prefix: str, portfolio: str | None = None
) -> dict[str, Any]:
    """The strategy document of one trial's draws over `bars` (the research period).

    On a universe the document names `universe:` and trades `portfolio` (default timing); the indicators' cut points
    and the labels' volatility are those of every symbol's research bars pooled (each symbol's values computed on
    its own bars: no indicator reads across two symbols).
    """
    usable = usable_indicators(bars)
    kinds = [kind for kind in usable if _suggest(trial, f"use_{kind}")] or [usable[0]]
    indicators = [{"type": kind, "period": _suggest(trial, f"{kind}_period")} for kind in kinds]
    sets, width = _suggest(trial, "fuzzy_sets"), _suggest(trial, "fuzzy_width")
    lookahead = _suggest(trial, "lookahead")
    threshold = _suggest(trial, "label_k") * volatility(bars) * math.sqrt(lookahead)
    hidden = _suggest(trial, "hidden")
    hold = _suggest(trial, "label_hold")
    hysteresis = _suggest(trial, "hysteresis")
    margin = _suggest(trial, "confidence_margin") if hysteresis else 0.0
    min_hold = _suggest(trial, "min_hold") if hysteresis else 1
    name = re.sub(r"[^a-z0-9_-]", "", f"{prefix}_{series.symbol}_{series.timeframe}_t{trial.number}".lower())
    where = {"universe": series.symbol} if series.is_universe else {"symbol": series.symbol}
    return {
        "name": name[:64],
        "description": f"{prefix} designer, trial {trial.number}: {', '.join(kinds)} on {series.symbol}.",
        "hypothesis": f"Fuzzy regimes of {' and '.join(kinds)} anticipate ZigZag swings.",
        **where,
        "timeframe": series.timeframe,
        "indicators": indicators,
        "fuzzy_sets": {f"{i['type']}_{i['period']}": fuzzy_sets(_primary(i, bars), sets, width) for i in indicators},
        "model": {
            "type": "mlp",
            "hidden_layers": [hidden] if _suggest(trial, "layers") == 1 else [hidden, max(4, hidden // 2)],
            "activation": "relu",
            "dropout": round(_suggest(trial, "dropout"), 4),
        },
        "labels": {
            "zigzag_threshold": round(min(0.5, max(1e-5, threshold)), 6),
            "lookahead": lookahead,
            "hold": hold,
        },
        "training": TRAINING | {"learning_rate": round(_suggest(trial, "learning_rate"), 6)},
        "backtest": {"confidence_threshold": round(confidence_threshold(hold, margin), 4), "min_hold": min_hold},
    } | ({"portfolio": {"mode": portfolio or "timing"}} if series.is_universe else {})


def frames(sample: Sample) -> tuple[pd.DataFrame, ...]:
    """The bars of each series a sample holds: one for a series, one per symbol for a universe."""
    return sample if isinstance(sample, tuple) else (sample,)


def usable_indicators(bars: Sample) -> tuple[str, ...]:
    """The indicators drawn for these bars: all of INDICATORS, or the close-based ones if any bars are close-only."""
    return CLOSE_ONLY_INDICATORS if any(is_close_only(frame) for frame in frames(bars)) else INDICATORS


def confidence_threshold(hold: bool, margin: float) -> float:
    """The threshold `margin` above the no-information level: 1/3 with a HOLD class, 1/2 without."""
    return (1 / 3 if hold else 1 / 2) + margin


def _suggest(trial: optuna.Trial, name: str) -> Any:
    dist: Any = space()[name]
    if hasattr(dist, "choices"):
        return trial.suggest_categorical(name, dist.choices)
    suggest = trial.suggest_int if isinstance(dist.step, int) else trial.suggest_float
    return suggest(name, dist.low, dist.high, log=dist.log)


def volatility(bars: Sample) -> float:
    """Standard deviation of the close-to-close log returns (the typical move per bar, a fraction), of every
    symbol's returns pooled on a universe (never a return from one symbol's close to another's)."""
    returns = [np.log(frame["close"]).diff() for frame in frames(bars)]
    return float(pd.concat(returns).std()) if len(returns) > 1 else float(returns[0].std())


def _primary(indicator: dict[str, Any], bars: Sample) -> np.ndarray:
    spec = SimpleNamespace(smooth=3, **indicator)
    values = np.concatenate([PRIMARY[indicator["type"]](spec, frame).to_numpy(dtype=float) for frame in frames(bars)])
    return values[np.isfinite(values)]


def fuzzy_sets(values: np.ndarray, count: int, width: float) -> dict[str, Any]:
    """Two or three fuzzy sets cut at the quantiles 0.5 - width, (0.5,) 0.5 + width of `values`.

    A series too short to warm the indicator up gives no values: placeholder cuts on [0, 1] keep the design valid,
    and training then fails with the engine's own reason (too few usable rows).
    """
    edges = np.quantile(values if len(values) else np.array([0.0, 1.0]), [0.0, 0.5 - width, 0.5, 0.5 + width, 1.0])
    low, c1, c2, c3, high = (float(f"{x:.6g}") for x in np.maximum.accumulate(edges + np.arange(5) * 1e-9))
    p = (low, c1, c3, high) if count == 2 else (low, c1, c2, c3, high)
    sets = {"low": [low, *p[:3]], "high": [*p[-3:], high]}
    found: dict[str, Any] = {key: {"type": "trapezoidal", "parameters": cuts} for key, cuts in sets.items()}
    return found | ({"mid": {"type": "triangular", "parameters": [c1, c2, c3]}} if count == 3 else {})


def params_of(document: dict[str, Any], bars: Sample) -> dict[str, Any]:
    """The space's parameters a strategy document (e.g. Claude's) sets, where they fall inside the space."""
    labels, model = document.get("labels") or {}, document.get("model") or {}
    kinds = {i.get("type"): i.get("period") for i in document.get("indicators") or [] if isinstance(i, dict)}
    found: dict[str, Any] = {f"use_{kind}": kind in kinds for kind in INDICATORS}
    found |= {f"{kind}_period": period for kind, period in kinds.items() if kind in INDICATORS}
    found["label_hold"] = hold = labels.get("hold", True)
    if labels.get("zigzag_threshold") and labels.get("lookahead"):
        scale = volatility(bars) * math.sqrt(labels["lookahead"])
        found |= {"lookahead": labels["lookahead"], "label_k": labels["zigzag_threshold"] / scale}
    layers = model.get("hidden_layers") or [None]
    found |= {"hidden": layers[0], "layers": len(layers), "dropout": model.get("dropout")}
    found["learning_rate"] = (document.get("training") or {}).get("learning_rate")
    backtest = document.get("backtest") or {}
    threshold, min_hold = backtest.get("confidence_threshold"), backtest.get("min_hold", 1)
    if isinstance(threshold, int | float) and not isinstance(threshold, bool):
        margin = threshold - confidence_threshold(bool(hold), 0.0)
        found["hysteresis"] = margin > 0.005  # rounding of a threshold at 1/3 is no margin
        found["confidence_margin"] = margin
    if isinstance(min_hold, int) and min_hold > 1:
        found["hysteresis"] = True  # a hold is drawn only with hysteresis: its absence would tell "every bar trades"
    if found.get("hysteresis"):
        found["min_hold"] = min_hold
    return {name: value for name, value in found.items() if _inside(space()[name], value)}


def _inside(dist: Any, value: Any) -> bool:
    if hasattr(dist, "choices"):
        return any(value is choice for choice in dist.choices)
    kind = int if isinstance(dist.step, int) else (int, float)
    return isinstance(value, kind) and not isinstance(value, bool) and dist.low <= value <= dist.high
