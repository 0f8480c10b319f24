"""The offline designer: a seeded search over the strategy grammar that learns from past cycles.

Deterministic for a given (seed, memory, request): the random generator is seeded from all three.
Each design:

1. picks the data: the requested symbol/timeframe, else (when exploiting) the best past cycle's, else a
   series drawn from the catalogue (longer series more often);
2. exploits or explores: with probability 1 - EPSILON it mutates one of the best past strategies (ranked
   by backtest Sharpe, then training accuracy); otherwise it draws a fresh strategy;
3. steers away from gate failures: label settings (ZigZag threshold, lookahead) and indicator mixes of
   cycles that failed `accuracy_below_threshold` are avoided; loss failures raise the learning rate,
   epochs and lower dropout; backtest failures raise the confidence threshold;
4. validates with `parse_strategy` and retries until the document is valid and new.

Only scale-free indicators (oscillators and rate of change) are used: their fuzzy sets can be placed
without knowing the instrument's price level.
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
EPOCHS = (20, 40)
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
    "roc": (-3.0, 3.0, (-1.0, 0.0, 1.0)),  # in units of the timeframe's typical move, see MOVE
}
KINDS = tuple(RANGES)
# Typical absolute move per bar for each timeframe (a fraction); scales ZigZag thresholds and ROC sets.
MOVE = {
    "1m": 0.0003,
    "5m": 0.0007,
    "15m": 0.0012,
    "30m": 0.0017,
    "1h": 0.0025,
    "4h": 0.005,
    "1d": 0.01,
    "1w": 0.022,
}


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


def select_series(
    catalogue: Iterable[DataSeries], symbol: str | None, timeframe: str | None
) -> list[DataSeries]:
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
        series = self.rng.choices(self.catalogue, weights=[max(s.bars, 1) for s in self.catalogue])[0]
        kinds = self.rng.sample(KINDS, self.rng.randint(2, 4))
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
            "labels": self._labels(series.timeframe),
            "training": self._training(),
            "backtest": {"confidence_threshold": round(self.rng.uniform(0.35, 0.6), 3)},
        }

    def _indicator(self, kind: str) -> dict[str, Any]:
        indicator: dict[str, Any] = {"type": kind, "period": self.rng.choice([5, 7, 9, 10, 12, 14, 21, 28])}
        if kind == "stochastic":
            indicator["smooth"] = self.rng.choice([1, 3, 5])
        return indicator

    def _model(self) -> dict[str, Any]:
        layers = [self.rng.choice([16, 32, 64])]
        if self.rng.random() < 0.6:
            layers.append(self.rng.choice([8, 16, 32]))
        return {
            "type": "mlp",
            "hidden_layers": layers,
            "activation": self.rng.choice(["relu", "tanh", "gelu", "leaky_relu"]),
            "dropout": round(self.rng.uniform(0.0, 0.35), 3),
        }

    def _labels(self, timeframe: str) -> dict[str, Any]:
        lookahead = self.rng.choice([5, 8, 10, 12, 16, 20, 24, 30])
        scale = MOVE.get(timeframe, 0.0025) * math.sqrt(lookahead)
        threshold = scale * math.exp(self.rng.uniform(math.log(0.5), math.log(2.0)))
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
        indicators = [i for i in document.get("indicators", []) if i.get("type") in KINDS] or [
            self._indicator("rsi")
        ]
        unused = [k for k in KINDS if k not in {i["type"] for i in indicators}]
        if unused:
            indicators[self.rng.randrange(len(indicators))] = self._indicator(self.rng.choice(unused))
        document["indicators"] = indicators

    def _mutate_labels(self, document: dict[str, Any]) -> None:
        labels = document.setdefault("labels", {})
        labels["zigzag_threshold"] = _clamp_threshold(
            labels.get("zigzag_threshold", 0.01) * self.rng.uniform(0.6, 1.6)
        )
        labels["lookahead"] = max(1, round(labels.get("lookahead", 20) * self.rng.uniform(0.7, 1.4)))

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
        if (
            self.failures["win_rate_too_low"]
            + self.failures["sharpe_too_low"]
            + self.failures["drawdown_too_high"]
        ):
            backtest = document.setdefault("backtest", {})
            backtest["confidence_threshold"] = round(max(backtest.get("confidence_threshold", 0.4), 0.5), 3)
        document["fuzzy_sets"] = {
            _feature_id(i): self._fuzzy_sets(i, document["timeframe"]) for i in document["indicators"]
        }

    def _steer_labels(self, document: dict[str, Any]) -> None:
        labels = document.setdefault("labels", {"zigzag_threshold": 0.01, "lookahead": 20})
        for _ in range(20):
            if not any(_near(labels, bad) for bad in self.bad_labels):
                return
            # Jump well outside the failed neighbourhood: a much smaller or much larger swing.
            factor = self.rng.choice([0.3, 0.45, 2.2, 3.0])
            labels["zigzag_threshold"] = _clamp_threshold(labels["zigzag_threshold"] * factor)
            labels["lookahead"] = max(1, round(labels["lookahead"] * self.rng.choice([0.5, 1.0, 2.0])))

    def _fuzzy_sets(self, indicator: dict[str, Any], timeframe: str) -> dict[str, Any]:
        low, high, cuts = RANGES[indicator["type"]]
        unit = (
            MOVE.get(timeframe, 0.0025) * 100 * math.sqrt(indicator.get("period", 14))
            if indicator["type"] == "roc"
            else 1.0
        )
        low, high = round(low * unit, 4), round(high * unit, 4)
        jitter = (high - low) * 0.05
        c1, c2, c3 = sorted(round(c * unit + self.rng.uniform(-jitter, jitter), 4) for c in cuts)
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
    kinds = "_".join(dict.fromkeys(i["type"].replace("williams_r", "willr") for i in document["indicators"]))[
        :40
    ]
    digest = hashlib.sha256(_signature(document).encode()).hexdigest()[:6]
    return f"offline_{kinds}_{digest}"


def _fingerprint(seed: int, memory: ResearchMemory, symbol: str | None, timeframe: str | None) -> int:
    history = [(c.operation_id, c.status, c.strategy_name, c.error_message) for c in memory.cycles]
    text = json.dumps([seed, symbol, timeframe, history], default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
