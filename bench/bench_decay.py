"""The decay alarm on planted reversals (issue 27): silent while an edge lasts, quick when it turns or dies.

Run: make bench-decay, or
     .venv/bin/python bench/bench_decay.py [--seeds 200] [--first-seed 1] [--arl0 4000] [--trials 20] [--no-costs]

Each run is one seed of a planted one-day reversal (`synth.synth_bars("reversal", strength, seed)`, 5031 daily bars,
the default 20% lockbox). 600 forward bars follow its last bar: the same AR(1) process for 100 bars, then one of
three changes at forward bar 100:

- **continue**: the process stays as it was (the alarm should stay silent: no alarm in >= 90% of runs);
- **reverse**: the AR coefficient changes sign, so the rule now loses as much as it earned (alarm in >= 90%);
- **off**: the coefficient becomes 0, a random walk: no edge left (alarm in >= 90% at strength 3.0; at 2.0 the
  rate and delay as they come).

The variance of a return stays the process's in every case. A simplification, said here and in the results: the
strategy monitored is the planted rule itself (hold -sign(last return) over the next bar), not a trained model;
its backtest mean and standard deviation are the rule's on the series' own research bars (the lockbox cut off), and
the trial count is `--trials` (20) with the trials' Sharpe variance at its floor, 1 / research bars. A paper account
feeds its model's forward returns to the same `engine.decay.DecayMonitor`. Costs are charged as the strategy's
defaults (`Backtest.commission + slippage`, per unit of position traded: a flip pays twice), on the research bars and
on the forward bars alike; `--no-costs` leaves them out.

An alarm before forward bar 100 is a false one: a change row counts only alarms at or after bar 100 as detections,
and reports the early ones apart. The delay is the alarm's bar less 100. The threshold is set per run from the
in-control average run length `--arl0` (`engine.decay`); a sweep over it shows the trade-off behind the default,
DEFAULT_ARL0 = 4000 bars, which was chosen on tuning seeds 1001..1100 (`--first-seed 1001 --seeds 100`): the value at
which both continuing edges stayed silent in at least 97% of runs while the dead strong edge was still caught in 97%
(3000 met the goals there too, with less margin). The table is run on seeds 1..200; a first probe, before the tuning,
looked at seeds 1..40 of them.

Writes bench/results/decay.json (stamped: command, commit, date, settings) and prints the table.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # noqa: E402  (bench/ is not a package)

from agent_pipeline.engine.decay import DEFAULT_ARL0, DecayBaseline, DecayMonitor  # noqa: E402
from agent_pipeline.engine.strategy import Backtest  # noqa: E402
from agent_pipeline.engine.synth import DEFAULT_BARS, bar_volatility, rule_correlation, synth_bars  # noqa: E402
from agent_pipeline.engine.walkforward import lockbox_start  # noqa: E402

FORWARD_BARS = 600
CHANGE_AT = 100
LOCKBOX_FRACTION = 0.2
STRENGTHS = (2.0, 3.0)
CHANGES = ("continue", "reverse", "off")
# The goal of each change: the share of runs that must raise no alarm (continue) or detect (the others); None:
# reported as it comes (the weak edge switched off).
GOALS: dict[tuple[str, float], float | None] = {
    ("continue", 2.0): 0.9,
    ("continue", 3.0): 0.9,
    ("reverse", 2.0): 0.9,
    ("reverse", 3.0): 0.9,
    ("off", 2.0): None,
    ("off", 3.0): 0.9,
}
# In-control average run lengths (bars) of the sweep: each sets the threshold of every run.
SWEEP = (1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 10000.0, 20000.0)


@dataclass(frozen=True)
class Run:
    """One seed of one row: the rule's research figures and its forward returns."""

    baseline: DecayBaseline
    forward: np.ndarray
    research_sharpe: float  # annualised, costs included


def forward_log_returns(last: float, strength: float, change: str, rng: np.random.Generator) -> np.ndarray:
    """FORWARD_BARS log returns: the planted AR(1) from the series' last return, changed at CHANGE_AT."""
    a = rule_correlation(strength)
    after = {"continue": -a, "reverse": a, "off": 0.0}[change]
    volatility = bar_volatility("1d")
    shocks = rng.normal(0.0, 1.0, FORWARD_BARS)
    returns = np.empty(FORWARD_BARS)
    previous = last
    for t in range(FORWARD_BARS):
        coefficient = -a if t < CHANGE_AT else after
        previous = coefficient * previous + volatility * math.sqrt(1 - coefficient**2) * shocks[t]
        returns[t] = previous
    return returns


def rule_net_returns(closes: np.ndarray, cost: float) -> np.ndarray:
    """The contrarian rule's return over each bar from the third: position -sign(last return), less its trading cost."""
    moves = np.diff(np.log(closes))
    positions = -np.sign(moves)  # decided at each close from the second, held over the next bar
    gross = positions[:-1] * (closes[2:] / closes[1:-1] - 1)
    traded = np.abs(np.diff(np.concatenate(([0.0], positions[:-1]))))
    return gross - cost * traded


def make_run(strength: float, change: str, seed: int, args: argparse.Namespace, cost: float) -> Run:
    """The series of `seed`, the rule's research figures on it, and its returns over the forward bars."""
    frame, _ = synth_bars("reversal", strength, seed, args.bars, lockbox_fraction=LOCKBOX_FRACTION)
    closes = frame["close"].to_numpy(dtype=float)
    research = rule_net_returns(closes[: lockbox_start(len(closes), LOCKBOX_FRACTION)], cost)
    rng = np.random.default_rng([seed, 27])  # the same forward shocks for every change of a seed
    moves = forward_log_returns(math.log(closes[-1] / closes[-2]), strength, change, rng)
    every = np.concatenate((closes, closes[-1] * np.exp(np.cumsum(moves))))
    forward = rule_net_returns(every, cost)[-FORWARD_BARS:]
    mean, std = float(research.mean()), float(research.std(ddof=1))
    baseline = DecayBaseline(mean, std, trials=args.trials, backtest_bars=len(research))
    return Run(baseline, forward, mean / std * math.sqrt(252))


def first_alarm(run: Run, arl0: float) -> int | None:
    """The forward bar at which the monitor fires, None if it stays silent over the forward bars."""
    return DecayMonitor(run.baseline, arl0=arl0).update(run.forward).fired_bar


def summarise(change: str, alarms: list[int | None]) -> dict[str, Any]:
    """A row's figures: alarm rate, early (false) alarms, detections after the change and their delays."""
    fired = [bar for bar in alarms if bar is not None]
    early = [bar for bar in fired if bar < CHANGE_AT]
    delays = sorted(bar - CHANGE_AT for bar in fired if bar >= CHANGE_AT)
    row: dict[str, Any] = {
        "runs": len(alarms),
        "alarm_rate": len(fired) / len(alarms),
        "early_alarm_rate": len(early) / len(alarms),
        "detection_rate": len(delays) / len(alarms),
        "median_delay": statistics.median(delays) if delays else None,
        "delay_quartiles": [float(q) for q in np.percentile(delays, [25, 75])] if delays else None,
    }
    row["no_alarm_rate"] = 1.0 - row["alarm_rate"]
    return row


def judged(row: dict[str, Any], change: str, goal: float | None) -> dict[str, Any]:
    """The row with its goal and whether it met it (continue: no alarm; the others: detection)."""
    achieved = row["no_alarm_rate"] if change == "continue" else row["detection_rate"]
    return row | {"goal": goal, "met": None if goal is None else achieved >= goal}


def table(runs: dict[tuple[str, float], list[Run]], arl0: float) -> list[dict[str, Any]]:
    """Every row's figures with the threshold set for `arl0`."""
    rows = []
    for (change, strength), group in runs.items():
        row = summarise(change, [first_alarm(run, arl0) for run in group])
        shrunk = [run.baseline.shrunk_sharpe * math.sqrt(252) for run in group]
        row |= {"change": change, "strength": strength}
        row |= {"research_sharpe_mean": float(np.mean([run.research_sharpe for run in group]))}
        row |= {"shrunk_sharpe_mean": float(np.mean(shrunk))}
        rows.append(judged(row, change, GOALS[(change, strength)]))
    return rows


def print_table(rows: list[dict[str, Any]], arl0: float) -> None:
    print(f"arl0 {arl0:g}: change strength  no-alarm  early  detected  median delay [quartiles]  goal")
    for row in rows:
        quartiles = row["delay_quartiles"] or ["-", "-"]
        goal = "report" if row["goal"] is None else f"{row['goal']:.0%} {'met' if row['met'] else 'MISSED'}"
        print(
            f"  {row['change']:<8} {row['strength']:>4.1f}  {row['no_alarm_rate']:>7.0%}"
            f"  {row['early_alarm_rate']:>5.0%}  {row['detection_rate']:>8.0%}  {row['median_delay']!s:>6} {quartiles}"
            f"  {goal}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds per row (at least 20)")
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed (the tuning used 1001..1100)")
    parser.add_argument("--arl0", type=float, default=DEFAULT_ARL0, help="in-control average run length (bars)")
    parser.add_argument("--trials", type=int, default=20, help="the trial count behind the shrunk mean")
    parser.add_argument("--bars", type=int, default=DEFAULT_BARS, help="bars of each planted series")
    parser.add_argument("--no-costs", action="store_true", help="leave the strategy's default costs out")
    add_options(parser, RESULTS_DIR / "decay.json")
    args = parser.parse_args()
    if args.seeds < 20:
        parser.error("at least 20 seeds per row")
    reset_gate_env(keep=args.keep_gate_env)
    defaults = Backtest()
    cost = 0.0 if args.no_costs else defaults.commission + defaults.slippage
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = {
        (change, strength): [make_run(strength, change, seed, args, cost) for seed in seeds]
        for change in CHANGES
        for strength in STRENGTHS
    }
    rows = table(runs, args.arl0)
    print_table(rows, args.arl0)
    sweep = {f"{h:g}": table(runs, h) for h in SWEEP}
    for h, swept in sweep.items():
        print(f"  sweep arl0={h}: " + ", ".join(f"{r['change']} {r['strength']:g} {sweep_cell(r)}" for r in swept))
    record = {
        "rows": rows,
        "sweep": sweep,
        "arl0": args.arl0,
        "seeds": list(seeds),
        "forward_bars": FORWARD_BARS,
        "change_at": CHANGE_AT,
        "trials": args.trials,
        "cost_per_unit_traded": cost,
        "series_bars": args.bars,
        "simplification": "the monitored strategy is the planted rule itself (hold -sign(last return)), its backtest "
        "mean and std from the rule on the series' research bars, trials fixed, trial Sharpe variance at 1/bars",
    }
    note = "no research cycle: the planted rule's returns feed engine.decay.DecayMonitor"
    write(args.results, record, cycles=None, cycles_note=note, lockbox_fraction=LOCKBOX_FRACTION)


def sweep_cell(row: dict[str, Any]) -> str:
    rate = row["no_alarm_rate"] if row["change"] == "continue" else row["detection_rate"]
    return f"{rate:.0%}" + ("" if row["median_delay"] is None else f"/{row['median_delay']:g}")


if __name__ == "__main__":
    main()
