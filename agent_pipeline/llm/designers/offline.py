"""The offline designer: a seeded search over the strategy grammar that learns from past cycles.

Deterministic for a given (seed, memory, request): the random generator is seeded from all three.
Each design:

1. picks the data: the requested symbol/timeframe, else (when exploiting) the best past cycle's, else a
   series drawn from the catalogue (longer series more often);
2. exploits or explores: with probability 1 - EPSILON it mutates one of the best past strategies (ranked
   by backtest Sharpe, then training accuracy); otherwise it draws a fresh strategy;
3. steers away from gate failures: label settings (ZigZag threshold, lookahead) and indicator mixes of
   cycles that failed `accuracy_below_threshold` are avoided; loss failures raise the learning rate,
   epochs and lower dropout; backtest failures move the confidence threshold to the top of its range (below 0.5);
4. validates with `parse_strategy` and retries until the document is valid and new.

Labels and fuzzy sets are scaled by the series' typical move per bar (`bar_volatility`: measured values
for the bundled series, else a per-timeframe table with a smaller move for currency pairs). The ZigZag
threshold is `k * volatility * sqrt(lookahead)` with k in LABEL_K, which keeps every class (SELL / HOLD /
BUY) at 12-72% of the training rows. SELL/HOLD/BUY shares measured on the bundled data (training split)
at the corners of the label space (lookahead 10 or 30, k 0.8 or 1.0):

| series | volatility | 10, 0.8 | 10, 1.0 | 30, 0.8 | 30, 1.0 |
|---|---|---|---|---|---|
| EURUSD 1h | 0.00095 | 22/52/26% | 16/64/20% | 27/36/37% | 19/51/30% |
| SP500 1d | 0.0134 | 22/60/18% | 16/72/12% | 24/56/20% | 17/71/12% |
| NASDAQ 1d | 0.018 | 23/54/23% | 17/67/15% | 24/51/25% | 17/67/16% |

HOLD is the plurality on purpose: with HOLD at roughly half to two thirds of the rows the model learns the
volatility regime (calm -> HOLD) and so a validation loss well under the prior's, and a BUY or SELL it does
predict is a real swing call. The backtester acts on every BUY/SELL whose top probability clears
`confidence_threshold` and keeps the position on HOLD, so fresh strategies draw a low threshold (CONFIDENCE,
just above 1/3, the floor for three classes): with a threshold of 0.5 or more a HOLD-heavy model rarely
acts at all (no trades, win rate 0), while a low one turns its swing calls into trades. Measured with
empty memory on the bundled data (first proposal, seeds 0..99): both gates 31/100 (17/100 with k in
0.65-0.9 and thresholds 0.4-0.6), training gate 68/100 (54/100), median trades per backtest 9.5 (1).

Every fresh strategy holds one ATR (volatility regime: with a fixed threshold, calm periods are HOLD,
volatile ones BUY/SELL, the most learnable part of the labels) plus one to three oscillators or rate of
change. Only scale-free indicators are used (ATR is a fraction of the close and ROC a percent, both
placed in units of the series' volatility), so no fuzzy set needs the instrument's price level. Fresh draws
favour longer bars (weight `bars * sqrt(bar hours)`): their labels are less noisy (on the bundled data
daily series pass the training gate far more often than EURUSD 1h), but every series stays reachable.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from collections.abc import Iterable
from typing import Any

from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.errors import DesignError, StrategyValidationError
from agent_pipeline.llm.catalogue import DataSeries, available_pairs
from agent_pipeline.llm.designer import Designer, DesignOutcome
from agent_pipeline.llm.memory import PastCycle, ResearchMemory

# Chance of drawing a fresh strategy even when good past ones exist.
EPSILON = 0.3
# How many of the best past cycles are candidates for mutation.
PARENTS = 3
# Epochs drawn for a fresh strategy: small enough for a cycle of about a minute on 2 CPU cores.
EPOCHS = (30, 50)
# Two label settings closer than this (ratio of thresholds) count as the same configuration.
LABEL_NEIGHBOURHOOD = 1.5
# Give up after this many candidates (never reached in practice: every draw is valid by construction).
MAX_DRAWS = 200
# Value ranges of the indicators the offline designer uses: (low, high, typical cut points).
RANGES: dict[str, tuple[float, float, tuple[float, float, float]]] = {
    "rsi": (0.0, 100.0, (30.0, 50.0, 70.0)),
    "stochastic": (0.0, 100.0, (20.0, 50.0, 80.0)),
    "williams_r": (-100.0, 0.0, (-80.0, -50.0, -20.0)),
    "cci": (-250.0, 250.0, (-100.0, 0.0, 100.0)),
    "adx": (0.0, 100.0, (15.0, 25.0, 40.0)),
    "roc": (-3.0, 3.0, (-1.0, 0.0, 1.0)),  # in units of the series' move over the period, see _unit
    "atr": (0.0, 5.0, (0.7, 1.1, 1.6)),  # in units of the series' move per bar (ATR / close vs volatility)
}
KINDS = tuple(RANGES)
# Indicators besides the ATR that every fresh strategy holds.
OSCILLATORS = tuple(k for k in KINDS if k != "atr")
# Typical absolute move per bar (standard deviation of close-to-close returns, a fraction) of a stock
# index per timeframe; scales ZigZag thresholds and the ATR/ROC fuzzy sets.
MOVE = {
    "1m": 0.0005,
    "5m": 0.001,
    "15m": 0.0017,
    "30m": 0.0022,
    "1h": 0.0025,
    "4h": 0.005,
    "1d": 0.013,
    "1w": 0.025,
}
# Currency pairs move less than stock indices: about 0.4x at every timeframe (EURUSD 1h: 0.1% vs 0.25%).
FX_FACTOR = 0.4
CURRENCIES = frozenset(["USD", "EUR", "JPY", "GBP", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "DKK"])
# Measured on the bundled data (standard deviation of 1-bar log returns over the 70% training split).
MEASURED = {("EURUSD", "1h"): 0.00095, ("SP500", "1d"): 0.0134, ("NASDAQ", "1d"): 0.018}
# ZigZag threshold in units of volatility * sqrt(lookahead): below ~0.5 HOLD vanishes, above ~1.1 it
# swamps BUY and SELL (under 10% each on SP500 1d; see the table in the module docstring).
LABEL_K = (0.8, 1.0)
# Lookaheads drawn for a fresh strategy; longer windows give the volatility regime more to work with.
LOOKAHEADS = (10, 12, 16, 20, 24, 30)
# Backtest confidence thresholds drawn for a fresh strategy: just above 1/3, so the model's swing calls
# become trades (see the module docstring).
CONFIDENCE = (0.34, 0.45)
# Bar length in hours, for the series weights of fresh draws.
HOURS = {"1m": 1 / 60, "5m": 5 / 60, "15m": 0.25, "30m": 0.5, "1h": 1, "4h": 4, "1d": 24, "1w": 120}


class OfflineDesigner(Designer):
    """Designs without an LLM; see the module docstring for the rules."""

    name = "offline"

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed

    def design(
        self,
        *,
        memory: ResearchMemory,
        catalogue: list[DataSeries],
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> DesignOutcome:
        candidates = select_series(catalogue, symbol, timeframe)
        rng = random.Random(_fingerprint(self.seed, memory, symbol, timeframe))
        search = _Search(rng, memory, candidates)
        document, notes = search.propose()
        strategy = parse_strategy(document, available=available_pairs(candidates))
        return DesignOutcome(
            strategy=strategy,
            document=document,
            usage=None,
            designer=self.name,
            attempts=search.draws,
            notes=f"offline designer (no ANTHROPIC_API_KEY): {notes}",
        )


def select_series(catalogue: Iterable[DataSeries], symbol: str | None, timeframe: str | None) -> list[DataSeries]:
    """The catalogue entries that match the request.

    Raises:
        DesignError: nothing matches (the message lists what is available).
    """
    series = list(catalogue)
    chosen = [s for s in series if (symbol in (None, s.symbol)) and (timeframe in (None, s.timeframe))]
    if not chosen:
        offered = ", ".join(f"{s.symbol} {s.timeframe}" for s in series) or "none"
        wanted = f"{symbol or '*'} {timeframe or '*'}"
        raise DesignError(f"no market data for {wanted} (available: {offered})")
    return chosen


class _Search:
    """One design's random draws; `propose` returns a valid, new strategy document and a note."""

    def __init__(self, rng: random.Random, memory: ResearchMemory, catalogue: list[DataSeries]) -> None:
        self.rng = rng
        self.memory = memory
        self.catalogue = catalogue
        self.pairs = available_pairs(catalogue)
        self.draws = 0
        self.failures = memory.gate_failures()
        self.bad_labels = _failed_labels(memory.cycles)
        self.bad_mixes = _failed_mixes(memory.cycles)
        self.seen = {_signature(c.strategy) for c in memory.cycles if c.strategy}
        self.parents = [c for c in memory.ranked if c.strategy and _pair(c.strategy) in self.pairs][:PARENTS]

    def propose(self) -> tuple[dict[str, Any], str]:
        for _ in range(MAX_DRAWS):
            self.draws += 1
            document, note = self._candidate()
            self._steer(document)
            document["name"] = _name(document)
            try:
                parse_strategy(document, available=self.pairs)
            except StrategyValidationError:
                continue
            if _signature(document) not in self.seen:
                return document, note + self._steering_note()
        raise DesignError(f"offline designer found no new valid strategy in {MAX_DRAWS} draws")

    def _candidate(self) -> tuple[dict[str, Any], str]:
        if self.parents and self.rng.random() >= EPSILON:
            parent = self.rng.choice(self.parents)
            return self._mutate(copy.deepcopy(parent.strategy or {})), f"mutated {parent.strategy_name}"
        return self._fresh(), "explored a fresh configuration"

    # -- drawing -------------------------------------------------------------------------------------
    def _fresh(self) -> dict[str, Any]:
        weights = [max(s.bars, 1) * math.sqrt(HOURS.get(s.timeframe, 1)) for s in self.catalogue]
        series = self.rng.choices(self.catalogue, weights=weights)[0]
        kinds = ["atr", *self.rng.sample(OSCILLATORS, self.rng.randint(1, 3))]
        indicators = [self._indicator(kind) for kind in kinds]
        return {
            "name": "pending",
            "description": f"Offline search: {', '.join(kinds)} on {series.symbol} {series.timeframe}.",
            "hypothesis": f"Fuzzy regimes of {' and '.join(kinds)} anticipate ZigZag swings.",
            "symbol": series.symbol,
            "timeframe": series.timeframe,
            "indicators": indicators,
            "fuzzy_sets": {},
            "model": self._model(),
            "labels": self._labels(series.symbol, series.timeframe),
            "training": self._training(),
            "backtest": {"confidence_threshold": round(self.rng.uniform(*CONFIDENCE), 3)},
        }

    def _indicator(self, kind: str) -> dict[str, Any]:
        indicator: dict[str, Any] = {"type": kind, "period": self.rng.choice([5, 7, 9, 10, 12, 14, 21, 28])}
        if kind == "stochastic":
            indicator["smooth"] = self.rng.choice([1, 3, 5])
        return indicator

    def _model(self) -> dict[str, Any]:
        layers = [self.rng.choice([24, 32, 48, 64])]
        if self.rng.random() < 0.6:
            layers.append(self.rng.choice([8, 16, 32]))
        return {
            "type": "mlp",
            "hidden_layers": layers,
            "activation": self.rng.choice(["relu", "tanh", "gelu", "leaky_relu"]),
            "dropout": round(self.rng.uniform(0.0, 0.25), 3),
        }

    def _labels(self, symbol: str, timeframe: str) -> dict[str, Any]:
        lookahead = self.rng.choice(LOOKAHEADS)
        k = math.exp(self.rng.uniform(math.log(LABEL_K[0]), math.log(LABEL_K[1])))
        threshold = k * bar_volatility(symbol, timeframe) * math.sqrt(lookahead)
        return {"zigzag_threshold": _clamp_threshold(threshold), "lookahead": lookahead}

    def _training(self) -> dict[str, Any]:
        return {
            "epochs": self.rng.randint(*EPOCHS),
            "batch_size": self.rng.choice([32, 64, 128]),
            "learning_rate": round(math.exp(self.rng.uniform(math.log(3e-4), math.log(3e-3))), 6),
            "early_stopping_patience": self.rng.randint(5, 10),
            "weight_decay": self.rng.choice([0.0, 1e-5, 1e-4]),
        }

    # -- mutating ------------------------------------------------------------------------------------
    def _mutate(self, document: dict[str, Any]) -> dict[str, Any]:
        document.pop("name", None)
        # Keep only indicators whose value range is known here (a Claude-designed parent may hold others).
        kept = [i for i in document.get("indicators", []) if isinstance(i, dict) and i.get("type") in KINDS]
        document["indicators"] = kept or [self._indicator(self.rng.choice(KINDS))]
        mutations = [self._mutate_periods, self._swap_indicator, self._mutate_labels, self._mutate_training]
        for mutation in self.rng.sample(mutations, self.rng.randint(1, 3)):
            mutation(document)
        return document

    def _mutate_periods(self, document: dict[str, Any]) -> None:
        for indicator in document.get("indicators", []):
            if "period" in indicator:
                indicator["period"] = max(2, round(indicator["period"] * self.rng.uniform(0.7, 1.4)))
                indicator.pop("name", None)

    def _swap_indicator(self, document: dict[str, Any]) -> None:
        indicators = [i for i in document.get("indicators", []) if i.get("type") in KINDS] or [self._indicator("rsi")]
        unused = [k for k in KINDS if k not in {i["type"] for i in indicators}]
        if unused:
            indicators[self.rng.randrange(len(indicators))] = self._indicator(self.rng.choice(unused))
        document["indicators"] = indicators

    def _mutate_labels(self, document: dict[str, Any]) -> None:
        labels = document.setdefault("labels", {})
        lookahead = max(1, round(labels.get("lookahead", 20) * self.rng.uniform(0.7, 1.4)))
        threshold = labels.get("zigzag_threshold", 0.01) * self.rng.uniform(0.7, 1.4)
        # Stay in the band of balanced classes (a Claude-designed parent may sit outside it).
        scale = bar_volatility(str(document.get("symbol")), str(document.get("timeframe"))) * math.sqrt(lookahead)
        low, high = 0.5 * LABEL_K[0] * scale, 1.1 * LABEL_K[1] * scale
        labels["zigzag_threshold"] = _clamp_threshold(min(high, max(low, threshold)))
        labels["lookahead"] = lookahead

    def _mutate_training(self, document: dict[str, Any]) -> None:
        training = document.setdefault("training", {})
        training["learning_rate"] = round(training.get("learning_rate", 1e-3) * self.rng.uniform(0.5, 2.0), 6)
        training["epochs"] = min(60, max(EPOCHS[0], training.get("epochs", 30) + self.rng.randint(-5, 10)))
        document["model"] = self._model() if self.rng.random() < 0.5 else document.get("model", self._model())

    # -- steering ------------------------------------------------------------------------------------
    def _steer(self, document: dict[str, Any]) -> None:
        kinds = frozenset(i["type"] for i in document["indicators"])
        if kinds in self.bad_mixes:
            self._swap_indicator(document)
        self._steer_labels(document)
        training, model = document.setdefault("training", {}), document.setdefault("model", self._model())
        if self.failures["loss_too_high"] + self.failures["insufficient_loss_decrease"]:
            training["learning_rate"] = min(0.01, round(training.get("learning_rate", 1e-3) * 2, 6))
            training["epochs"] = min(60, training.get("epochs", 30) + 10)
            model["dropout"] = round(min(model.get("dropout", 0.2), 0.1), 3)
        if self.failures["win_rate_too_low"] + self.failures["sharpe_too_low"] + self.failures["drawdown_too_high"]:
            backtest = document.setdefault("backtest", {})
            # More selective, but below 0.5: above it a HOLD-heavy model stops trading and the win rate is 0.
            middle = (CONFIDENCE[0] + CONFIDENCE[1]) / 2
            backtest["confidence_threshold"] = round(self.rng.uniform(middle, CONFIDENCE[1]), 3)
        move = bar_volatility(str(document["symbol"]), str(document["timeframe"]))
        document["fuzzy_sets"] = {_feature_id(i): self._fuzzy_sets(i, move) for i in document["indicators"]}

    def _steer_labels(self, document: dict[str, Any]) -> None:
        labels = document.setdefault("labels", {"zigzag_threshold": 0.01, "lookahead": 20})
        for _ in range(20):
            if not any(_near(labels, bad) for bad in self.bad_labels):
                return
            # Jump well outside the failed neighbourhood: a much smaller or much larger swing.
            factor = self.rng.choice([0.3, 0.45, 2.2, 3.0])
            labels["zigzag_threshold"] = _clamp_threshold(labels["zigzag_threshold"] * factor)
            labels["lookahead"] = max(1, round(labels["lookahead"] * self.rng.choice([0.5, 1.0, 2.0])))

    def _fuzzy_sets(self, indicator: dict[str, Any], move: float) -> dict[str, Any]:
        low, high, cuts = RANGES[indicator["type"]]
        unit = _unit(indicator, move)
        digits = 4 if unit >= 0.1 else 7
        low, high = round(low * unit, digits), round(high * unit, digits)
        spread = cuts[2] - cuts[0]  # jitter relative to the cut points (ATR's full range is wide)
        jitter = spread * unit * 0.1
        c1, c2, c3 = sorted(round(c * unit + self.rng.uniform(-jitter, jitter), digits) for c in cuts)
        if self.rng.random() < 0.5:  # two regimes
            return {
                "low": {"type": "trapezoidal", "parameters": [low, low, c1, c3]},
                "high": {"type": "trapezoidal", "parameters": [c1, c3, high, high]},
            }
        return {
            "low": {"type": "trapezoidal", "parameters": [low, low, c1, c2]},
            "mid": {"type": "triangular", "parameters": [c1, c2, c3]},
            "high": {"type": "trapezoidal", "parameters": [c2, c3, high, high]},
        }

    def _steering_note(self) -> str:
        if not self.failures:
            return ""
        reasons = ", ".join(f"{reason} x{count}" for reason, count in self.failures.most_common())
        return f"; steering away from gate failures ({reasons})"


def bar_volatility(symbol: str, timeframe: str) -> float:
    """Typical move per bar of a series (a fraction): measured for the bundled data, else from MOVE."""
    if (symbol, timeframe) in MEASURED:
        return MEASURED[(symbol, timeframe)]
    move = MOVE.get(timeframe, MOVE["1h"])
    fx = len(symbol) == 6 and symbol[:3].upper() in CURRENCIES and symbol[3:].upper() in CURRENCIES
    return move * FX_FACTOR if fx else move


def _unit(indicator: dict[str, Any], move: float) -> float:
    """The factor from RANGES' units to the indicator's: ROC in percent over its period, ATR per bar."""
    if indicator["type"] == "roc":
        return move * 100 * math.sqrt(indicator.get("period", 14))
    if indicator["type"] == "atr":
        return move
    return 1.0


def _failed_labels(cycles: Iterable[PastCycle]) -> list[dict[str, Any]]:
    return [
        dict(c.strategy.get("labels") or {"zigzag_threshold": 0.01, "lookahead": 20})
        for c in cycles
        if c.strategy and c.gate_failure == "accuracy_below_threshold"
    ]


def _failed_mixes(cycles: Iterable[PastCycle]) -> set[frozenset[str]]:
    return {
        frozenset(str(i.get("type")) for i in c.strategy.get("indicators", []) if isinstance(i, dict))
        for c in cycles
        if c.strategy and c.gate_failure == "accuracy_below_threshold"
    }


def _near(labels: dict[str, Any], bad: dict[str, Any]) -> bool:
    ratio = labels["zigzag_threshold"] / max(float(bad.get("zigzag_threshold", 0.01)), 1e-9)
    close_threshold = 1 / LABEL_NEIGHBOURHOOD < ratio < LABEL_NEIGHBOURHOOD
    return close_threshold and abs(labels["lookahead"] - int(bad.get("lookahead", 20))) <= max(
        3, labels["lookahead"] // 3
    )


def _clamp_threshold(value: float) -> float:
    return round(min(0.5, max(0.0005, value)), 5)


def _feature_id(indicator: dict[str, Any]) -> str:
    return indicator.get("name") or (
        f"{indicator['type']}_{indicator['period']}" if "period" in indicator else indicator["type"]
    )


def _pair(document: dict[str, Any]) -> tuple[str, str]:
    return (str(document.get("symbol")), str(document.get("timeframe")))


def _signature(document: dict[str, Any] | None) -> str:
    """The document without its name: two strategies that differ only by name are the same."""
    body = {k: v for k, v in (document or {}).items() if k not in ("name", "description", "hypothesis")}
    return json.dumps(body, sort_keys=True, default=str)


def _name(document: dict[str, Any]) -> str:
    kinds = "_".join(dict.fromkeys(i["type"].replace("williams_r", "willr") for i in document["indicators"]))[:40]
    digest = hashlib.sha256(_signature(document).encode()).hexdigest()[:6]
    return f"offline_{kinds}_{digest}"


def _fingerprint(seed: int, memory: ResearchMemory, symbol: str | None, timeframe: str | None) -> int:
    history = [(c.operation_id, c.status, c.strategy_name, c.error_message) for c in memory.cycles]
    text = json.dumps([seed, symbol, timeframe, history], default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
