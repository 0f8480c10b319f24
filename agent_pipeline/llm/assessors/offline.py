"""The offline assessor: explicit rules over the training and backtest metrics.

Rules (each adds to the score and to strengths or weaknesses, with the numbers):

- edge: total_return > buy_and_hold_return scores +2 (strength); otherwise -2 ("no edge over buy-and-hold").
- Sharpe: >= 0.1 scores +1 (strength "positive Sharpe"), >= 1 another +1; < 0 scores -1 (weakness).
- win rate: >= 50% scores +1; < 40% scores -1.
- trades: fewer than MIN_TRADES (10) scores -1 ("too few trades to trust the statistics").
- drawdown: > 20% scores -1 ("high drawdown"), > 40% scores -2 instead; <= 10% is a strength.
- overfitting: validation and out-of-sample accuracy differ by more than 5 points scores -1.
- skill: balanced accuracy is judged against chance for the classes the out-of-sample labels hold
  (1 / n_classes: 50% for two, 33.3% for three). With the training's `skill_pvalue`, p <= SKILL_MAX_P (0.05)
  is skill (+1) and anything else is none (-1); an older result without it needs SKILL_MARGIN (5 points) over
  chance. A result with no balanced accuracy (the spec's mappings) falls back on plain accuracy: >= 55% is a
  strength (+1), below 45% a weakness (-1), each shown against the majority class when it is known.
- evidence: a deflated Sharpe ratio (every trial on the series counted) >= 0.95 scores +1; below 0.5 a
  weakness (-1): the result is within what the best of that many zero-skill trials reaches by luck.
- gates: each gate that did not pass (bypassed with --bypass-gates, or failed) scores -1 and is named with what
  it said; both passed is a strength (no score: it is the bar every cycle must clear).

Verdict: score >= PROMISING_SCORE (3) -> promising; score >= MEDIOCRE_SCORE (0) -> mediocre; else poor.
Never "promising" with fewer than MIN_TRADES trades, with out-of-sample results no better than buy-and-hold, or
with a gate that did not pass: such a verdict is capped at "mediocre".
Each list holds 2-4 items; short lists are padded with generic but true statements about the run: its number
of walk-forward folds, its series. Advice quotes the cycle's own figures (its labels' look-ahead, its trades),
never a constant of the synthetic generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.gates import DISCOVERY_DSR, GATES, format_p
from agent_pipeline.llm.assessor import AssessmentOutcome, Assessor

# Verdict thresholds on the rule score.
PROMISING_SCORE = 3
MEDIOCRE_SCORE = 0
# Fewer trades than this make the backtest statistics unreliable.
MIN_TRADES = 10
# A Sharpe ratio below this (annualised) is not called a strength: 0.001 is not a positive result.
MEANINGFUL_SHARPE = 0.1
# Deflated Sharpe below this is a weakness (a candidate, which promotion may make a discovery, has gates.DISCOVERY_DSR
# or more).
WEAK_DSR = 0.5
# The largest skill p-value (balanced accuracy beats chance) that counts as skill: the training gate's default
# TRAINING_GATE_MAX_P (issue 23).
SKILL_MAX_P = 0.05
# Without a p-value (a result older than issue 23), balanced accuracy must beat chance by this to count as skill.
SKILL_MARGIN = 0.05
# Plain accuracy (no balanced accuracy recorded) at or above this is a strength, below LOW_ACCURACY a weakness.
GOOD_ACCURACY, LOW_ACCURACY = 0.55, 0.45
# Validation and test accuracy further apart than this (a fraction) signal overfitting.
OVERFIT_GAP = 0.05
# Drawdowns (fractions) counted as high / severe / low.
HIGH_DRAWDOWN, SEVERE_DRAWDOWN, LOW_DRAWDOWN = 0.2, 0.4, 0.1
# The largest backtest.min_hold a strategy may set (engine.strategy.Backtest).
MAX_MIN_HOLD = 250


class OfflineAssessor(Assessor):
    """Assesses with the module's documented rules; no LLM, no cost."""

    name = "offline"

    def assess(
        self,
        *,
        strategy: Strategy,
        training_result: dict[str, Any],
        backtest_result: dict[str, Any],
        gates: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> AssessmentOutcome:
        """Judge the results; `gates` maps `training_gate` / `backtest_gate` to the cycle's recorded outcome
        (`passed`, `reason`, `bypassed`), so that a bypassed cycle is described as one."""
        rules = _Rules(strategy, training_result or {}, backtest_result or {}, gates or {})
        score = rules.apply()
        verdict = "promising" if score >= PROMISING_SCORE else "mediocre" if score >= MEDIOCRE_SCORE else "poor"
        if verdict == "promising" and not rules.may_be_promising():
            verdict = "mediocre"
        return AssessmentOutcome(
            verdict=verdict,
            strengths=_pad(rules.strengths, rules.generic_strengths()),
            weaknesses=_pad(rules.weaknesses, rules.generic_weaknesses()),
            suggestions=_pad(rules.suggestions, rules.generic_suggestions()),
            usage=None,
            assessor=self.name,
            notes=f"offline assessor (rule score {score})",
        )


def class_count(strategy: Strategy, training: Mapping[str, Any]) -> int:
    """The label classes the out-of-sample rows hold: the training's `n_classes`, else what the labels allow
    (two without HOLD, three with it) for results recorded before issue 23."""
    recorded = training.get("n_classes")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return recorded
    return 3 if strategy.labels.hold else 2


def chance_of(strategy: Strategy, training: Mapping[str, Any]) -> float:
    """What balanced accuracy scores with no skill: the training's `chance`, else 1 / class_count."""
    recorded = _get(training, "chance")
    return recorded if recorded is not None else 1.0 / class_count(strategy, training)


def fold_count(strategy: Strategy, training: Mapping[str, Any], backtest: Mapping[str, Any]) -> int | None:
    """How many walk-forward folds the cycle was evaluated on, as its results record them, else as its strategy
    sets them; None when neither says (the folds then came from KTRDR_WALK_FORWARD_FOLDS)."""
    walk_forward = training.get("walk_forward")
    if isinstance(walk_forward, Mapping) and isinstance(walk_forward.get("folds"), int):
        return int(walk_forward["folds"])
    folds = backtest.get("folds")
    return len(folds) if isinstance(folds, list) and folds else strategy.evaluation.folds


class _Findings:
    """What the rules found so far, and the figures every rule reads."""

    def __init__(
        self,
        strategy: Strategy,
        training: dict[str, Any],
        backtest: dict[str, Any],
        gates: Mapping[str, Mapping[str, Any] | None],
    ) -> None:
        self.strategy = strategy
        self.training = training
        self.backtest = backtest
        self.gates = gates
        self.n_classes = class_count(strategy, training)
        self.chance = chance_of(strategy, training)
        self.folds = fold_count(strategy, training, backtest)
        self.strengths: list[str] = []
        self.weaknesses: list[str] = []
        self.suggestions: list[str] = []

    def _overfitting(self) -> int:
        val = _get(self.training, "val_accuracy")
        test = _get(self.training, "test_accuracy", _get(self.training, "accuracy"))
        if val is None or test is None or abs(val - test) <= OVERFIT_GAP:
            return 0
        self.weaknesses.append(f"Overfitting: validation accuracy {_pct(val)} vs out-of-sample {_pct(test)}")
        self.suggestions.append("Regularise: more dropout or weight decay, a smaller network, or fewer epochs")
        return -1

    def _skill(self) -> int:
        """Balanced accuracy against chance for this cycle's classes, by its p-value when recorded."""
        balanced = _get(self.training, "balanced_accuracy")
        if balanced is None:
            return self._accuracy()
        pvalue = _get(self.training, "skill_pvalue")
        figures = f"balanced accuracy {_pct(balanced)} vs chance {_pct(self.chance)} for {self.n_classes} classes"
        if pvalue is not None:
            figures += f", p = {format_p(pvalue)}"
        over = f" over {self.folds} walk-forward folds" if self.folds else ""
        skilled = pvalue <= SKILL_MAX_P if pvalue is not None else balanced >= self.chance + SKILL_MARGIN
        if skilled:
            self.strengths.append(f"Out-of-sample skill{over}: {figures}")
            return 1
        self.weaknesses.append(f"No skill{over}: {figures}")
        self.suggestions.append("Revisit the labels or the features: the model does no better than chance")
        return -1

    def _accuracy(self) -> int:
        """Plain accuracy, for results without balanced accuracy; shown against the majority class if known."""
        accuracy = _get(self.training, "test_accuracy", _get(self.training, "accuracy"))
        if accuracy is None:
            return 0
        baseline = _get(self.training, "baseline_accuracy")
        against = f" (majority class {_pct(baseline)})" if baseline is not None else ""
        if accuracy >= GOOD_ACCURACY and (baseline is None or accuracy > baseline):
            self.strengths.append(f"Accuracy {_pct(accuracy)}{against}")
            return 1
        if accuracy < LOW_ACCURACY or (baseline is not None and accuracy <= baseline):
            self.weaknesses.append(f"Low accuracy ({_pct(accuracy)}{against})")
            self.suggestions.append("Revisit the labels: a different ZigZag threshold or lookahead")
            return -1
        return 0


class _Rules(_Findings):
    """The rules on the gates, the backtest and the evidence, on top of the training's (`_Findings`)."""

    def apply(self) -> int:
        # The gates, the edge and the skill first: they must not fall off a list that holds four items.
        score = sum(rule() for rule in (self._gates, self._edge, self._skill, self._evidence, self._trades,
                                        self._sharpe, self._win_rate, self._drawdown, self._overfitting))  # fmt: skip
        if self.gates and not self._stopped_gates() and all(self.gates.get(key) for key, _ in GATES):
            self.strengths.append("Passed the training and backtest gates")
        return score

    def may_be_promising(self) -> bool:
        """Enough trades, an out-of-sample return above buy-and-hold on the same bars, and every gate passed."""
        trades = _get(self.backtest, "num_trades")
        total, hold = _get(self.backtest, "total_return"), _get(self.backtest, "buy_and_hold_return")
        enough = trades is None or trades >= MIN_TRADES
        return enough and total is not None and total > (hold or 0.0) and not self._stopped_gates()

    def _stopped_gates(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The gates that did not pass (bypassed or failed), with their recorded outcome."""
        outcomes = [(label.lower(), self.gates.get(key)) for key, label in GATES]
        return [(label, gate) for label, gate in outcomes if gate and (gate.get("bypassed") or not gate.get("passed"))]

    def _gates(self) -> int:
        stopped = self._stopped_gates()
        for label, gate in stopped:
            if gate.get("bypassed"):
                self.weaknesses.append(
                    f"The {label} gate was bypassed: it would have failed ({gate.get('reason')}), so this cycle is"
                    " not a discovery"
                )
            else:
                self.weaknesses.append(f"The {label} gate failed ({gate.get('reason')})")
        if stopped:
            self.suggestions.append("Fix what the gate named before trusting any figure of this design")
        return -len(stopped)

    def _evidence(self) -> int:
        dsr, trials = _get(self.backtest, "deflated_sharpe"), _get(self.backtest, "trials")
        if dsr is None:
            return 0
        counted = f"{int(trials)} trials counted" if trials is not None else "every trial counted"
        if dsr >= DISCOVERY_DSR:
            self.strengths.append(f"Deflated Sharpe {dsr:.2f} ({counted}): unlikely to be luck")
            return 1
        if dsr < WEAK_DSR:
            self.weaknesses.append(f"Deflated Sharpe {dsr:.2f} ({counted}): within what luck explains")
            self.suggestions.append("Treat this as noise until an independent edge shows in more trials")
            return -1
        return 0

    def _edge(self) -> int:
        total, hold = _get(self.backtest, "total_return"), _get(self.backtest, "buy_and_hold_return")
        if total is None:
            return 0
        if hold is None:
            hold = 0.0
        if total > hold:
            self.strengths.append(f"Beat buy-and-hold: return {_pct(total)} vs {_pct(hold)}")
            return 2
        self.weaknesses.append(f"No edge over buy-and-hold: return {_pct(total)} vs {_pct(hold)}")
        self.suggestions.append("Look for a different signal: the model adds nothing over holding the asset")
        return -2

    def _sharpe(self) -> int:
        sharpe = _get(self.backtest, "sharpe_ratio")
        if sharpe is None:
            return 0
        if sharpe >= MEANINGFUL_SHARPE:
            self.strengths.append(f"Positive Sharpe ratio ({sharpe:.2f})")
            return 2 if sharpe >= 1 else 1
        if sharpe < 0:
            self.weaknesses.append(f"Negative Sharpe ratio ({sharpe:.2f}): risk is not rewarded")
            return -1
        return 0

    def _win_rate(self) -> int:
        rate = _get(self.backtest, "win_rate")
        if rate is None:
            return 0
        if rate >= 0.5:
            self.strengths.append(f"Win rate {_pct(rate)}")
            return 1
        if rate < 0.4:
            self.weaknesses.append(f"Low win rate ({_pct(rate)})")
            self.suggestions.append(self._whipsaw_advice())
            return -1
        return 0

    def _whipsaw_advice(self) -> str:
        """Fewer, steadier trades, sized from this cycle's own figures: the horizon its labels predict and how
        long its trades last, never a number tuned on one generator's series (issue 23)."""
        backtest, lookahead = self.strategy.backtest, self.strategy.labels.lookahead
        advice = f"Raise backtest.confidence_threshold (now {backtest.confidence_threshold:g}) so only confident"
        advice += " signals trade"
        if backtest.min_hold >= min(lookahead, MAX_MIN_HOLD):
            return advice
        advice += (
            f", or set backtest.min_hold (now {backtest.min_hold}) up to the {min(lookahead, MAX_MIN_HOLD)} bars"
            " the labels look ahead, so a call is not reversed by the next whipsaw"
        )
        held = self._bars_per_trade()
        if held is not None and held < lookahead:
            advice += f": its trades last {held:.1f} bars on average"
        return advice

    def _bars_per_trade(self) -> float | None:
        """Bars in the market per trade: exposure x bars / trades, when all three are recorded."""
        exposure, bars = _get(self.backtest, "exposure"), _get(self.backtest, "n_bars")
        trades = _get(self.backtest, "num_trades")
        if exposure is None or bars is None or not trades:
            return None
        return exposure * bars / trades

    def _trades(self) -> int:
        trades = _get(self.backtest, "num_trades")
        if trades is None or trades >= MIN_TRADES:
            return 0
        self.weaknesses.append(f"Too few trades ({int(trades)} < {MIN_TRADES}) to trust the statistics")
        self.suggestions.append("Lower the ZigZag threshold or the confidence threshold to trade more often")
        return -1

    def _drawdown(self) -> int:
        drawdown = _get(self.backtest, "max_drawdown")
        if drawdown is None:
            return 0
        if drawdown > HIGH_DRAWDOWN:
            self.weaknesses.append(f"High maximum drawdown ({_pct(drawdown)})")
            self.suggestions.append("Cut risk: add a trend filter (e.g. ADX) or trade only high-confidence signals")
            return -2 if drawdown > SEVERE_DRAWDOWN else -1
        if drawdown <= LOW_DRAWDOWN:
            self.strengths.append(f"Shallow maximum drawdown ({_pct(drawdown)})")
        return 0

    def generic_strengths(self) -> list[str]:
        s = self.strategy
        folds = f"{self.folds} walk-forward folds" if self.folds else "walk-forward folds"
        return [
            f"Trained and backtested on {s.symbol} {s.timeframe} over {folds}, each traded only by a model that"
            " had not seen it",
            f"Compact, reproducible design: {len(s.indicators)} indicator(s) and a "
            f"{'-'.join(map(str, s.model.hidden_layers))} MLP",
        ]

    def generic_weaknesses(self) -> list[str]:
        s = self.strategy
        folds = f"its {self.folds} out-of-sample folds" if self.folds else "its out-of-sample folds"
        return [
            f"All of {folds} come from one history of {s.symbol} {s.timeframe}",
            "One instrument only: robustness across markets is untested",
        ]

    def generic_suggestions(self) -> list[str]:
        s = self.strategy
        return [
            "Re-run the same design on another available symbol or timeframe to test robustness",
            f"Vary the ZigZag threshold (now {s.labels.zigzag_threshold:g}) to change the label balance",
        ]


def _pad(items: list[str], generic: list[str]) -> list[str]:
    out = list(dict.fromkeys(items))[:4]
    for item in generic:
        if len(out) >= 2:
            break
        out.append(item)
    return out


def _get(result: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    value = result.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")
