"""The offline assessor: explicit rules over the training and backtest metrics.

Rules (each adds to the score and to strengths or weaknesses, with the numbers):

- edge: total_return > buy_and_hold_return scores +2 (strength); otherwise -2 ("no edge over buy-and-hold").
- Sharpe: >= 0.1 scores +1 (strength "positive Sharpe"), >= 1 another +1; < 0 scores -1 (weakness).
- win rate: >= 50% scores +1; < 40% scores -1.
- trades: fewer than MIN_TRADES (10) scores -1 ("too few trades to trust the statistics").
- drawdown: > 20% scores -1 ("high drawdown"), > 40% scores -2 instead; <= 10% is a strength.
- overfitting: validation and test accuracy differ by more than 5 points scores -1.
- accuracy: test accuracy >= 55% is a strength (+1); below 45% a weakness (-1).

- evidence: a deflated Sharpe ratio (every trial on the series counted) >= 0.95 scores +1; below 0.5 a
  weakness (-1): the result is within what the best of that many zero-skill trials reaches by luck.
- skill: balanced accuracy below 40% (chance is 33%) is a weakness.

Verdict: score >= PROMISING_SCORE (3) -> promising; score >= MEDIOCRE_SCORE (0) -> mediocre; else poor.
Never "promising" with fewer than MIN_TRADES trades, or with out-of-sample results no better than buy-and-hold:
such a verdict is capped at "mediocre".
Each list holds 2-4 items; short lists are padded with generic but true statements about the run.
"""

from __future__ import annotations

from typing import Any

from agent_pipeline.engine.gates import DISCOVERY_DSR
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.llm.assessor import AssessmentOutcome, Assessor

# Verdict thresholds on the rule score.
PROMISING_SCORE = 3
MEDIOCRE_SCORE = 0
# Fewer trades than this make the backtest statistics unreliable.
MIN_TRADES = 10
# A Sharpe ratio below this (annualised) is not called a strength: 0.001 is not a positive result.
MEANINGFUL_SHARPE = 0.1
# Deflated Sharpe below this is a weakness (a discovery is gates.DISCOVERY_DSR or more).
WEAK_DSR = 0.5
# Balanced accuracy below this is no skill (chance is 1/3).
NO_SKILL = 0.40
# Validation and test accuracy further apart than this (a fraction) signal overfitting.
OVERFIT_GAP = 0.05
# Drawdowns (fractions) counted as high / severe / low.
HIGH_DRAWDOWN, SEVERE_DRAWDOWN, LOW_DRAWDOWN = 0.2, 0.4, 0.1


class OfflineAssessor(Assessor):
    """Assesses with the module's documented rules; no LLM, no cost."""

    name = "offline"

    def assess(
        self, *, strategy: Strategy, training_result: dict[str, Any], backtest_result: dict[str, Any]
    ) -> AssessmentOutcome:
        rules = _Rules(strategy, training_result or {}, backtest_result or {})
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


class _Rules:
    def __init__(self, strategy: Strategy, training: dict[str, Any], backtest: dict[str, Any]) -> None:
        self.strategy = strategy
        self.training = training
        self.backtest = backtest
        self.strengths: list[str] = []
        self.weaknesses: list[str] = []
        self.suggestions: list[str] = []

    def apply(self) -> int:
        return sum(rule() for rule in (self._edge, self._evidence, self._trades, self._sharpe, self._win_rate,
                                       self._drawdown, self._overfitting, self._accuracy))  # fmt: skip

    def may_be_promising(self) -> bool:
        """Enough trades, and an out-of-sample return above buy-and-hold on the same bars."""
        trades = _get(self.backtest, "num_trades")
        total, hold = _get(self.backtest, "total_return"), _get(self.backtest, "buy_and_hold_return")
        enough = trades is None or trades >= MIN_TRADES
        return enough and total is not None and total > (hold or 0.0)

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
            self.suggestions.append(
                "Raise backtest.confidence_threshold so only confident signals trade, or set backtest.min_hold"
                " (e.g. 10-20 bars) so a call is not reversed by the next whipsaw"
            )
            return -1
        return 0

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

    def _overfitting(self) -> int:
        val = _get(self.training, "val_accuracy")
        test = _get(self.training, "test_accuracy", _get(self.training, "accuracy"))
        if val is None or test is None or abs(val - test) <= OVERFIT_GAP:
            return 0
        self.weaknesses.append(f"Overfitting: validation accuracy {_pct(val)} vs test {_pct(test)}")
        self.suggestions.append("Regularise: more dropout or weight decay, a smaller network, or fewer epochs")
        return -1

    def _accuracy(self) -> int:
        balanced = _get(self.training, "balanced_accuracy")
        if balanced is not None and balanced < NO_SKILL:
            self.weaknesses.append(f"No skill: balanced accuracy {_pct(balanced)} (chance is about 33%)")
            return -1
        accuracy = _get(self.training, "test_accuracy", _get(self.training, "accuracy"))
        if accuracy is None:
            return 0
        if accuracy >= 0.55:
            self.strengths.append(f"Accuracy {_pct(accuracy)} on three classes (chance is about 33%)")
            return 1
        if accuracy < 0.45:
            self.weaknesses.append(f"Low accuracy ({_pct(accuracy)})")
            self.suggestions.append("Revisit the labels: a different ZigZag threshold or lookahead")
            return -1
        return 0

    def generic_strengths(self) -> list[str]:
        s = self.strategy
        return [
            f"Completed a full cycle on {s.symbol} {s.timeframe}: trained, then backtested on held-out data",
            f"Compact, reproducible design: {len(s.indicators)} indicator(s) and a "
            f"{'-'.join(map(str, s.model.hidden_layers))} MLP",
        ]

    def generic_weaknesses(self) -> list[str]:
        s = self.strategy
        return [
            f"Evaluated on a single held-out period of {s.symbol} {s.timeframe}",
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


def _get(result: dict[str, Any], key: str, default: float | None = None) -> float | None:
    value = result.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".0%", "%")
