"""Backtest speed: our vectorised `simulate` against the plainest Python loop over the same signals.

Run: .venv/bin/python bench/bench_backtest.py [--bars 200000]
Prints e.g. `backtest: ours 5.1M bars/s, loop 0.3M bars/s, ratio 17 (goal >= 1.0)` (best of 3 each).
The loop is the cash/units reference the unit tests check `simulate` against; both give the same equity.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py

from agent_pipeline.engine.backtest import simulate

GOAL = 1.0  # ours / loop, in bars per second
COST = 0.0003  # commission + slippage per side


def make_bars(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    closes = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([1.1], closes[:-1]))
    bars = pd.DataFrame({"open": opens, "close": closes}, index=pd.date_range("2000-01-01", periods=n, freq="h"))
    # Positions that change every ~10 bars on average, like a model's signals.
    changes = rng.random(n) < 0.1
    signals = np.where(changes, rng.choice([-1.0, 0.0, 1.0], size=n), np.nan)
    signals = pd.Series(signals).ffill().fillna(0.0).to_numpy()
    return bars, signals


def loop(bars: pd.DataFrame, signals: np.ndarray) -> list[float]:
    """Bar by bar: execute the previous bar's target at this open, mark to market at this close."""
    cash, units, current = 1.0, 0.0, 0.0
    opens, closes = bars["open"].tolist(), bars["close"].tolist()
    equity = []
    for k in range(len(opens)):
        target = signals[k - 1] if k else 0.0
        if target != current:
            price = opens[k]
            if units:
                cash += units * price - abs(units) * price * COST
                units = 0.0
            if target:
                units = target * cash / price
                cash -= units * price + abs(units) * price * COST
            current = target
        equity.append(cash + units * closes[k])
    if units:
        equity[-1] = cash + units * closes[-1] - abs(units) * closes[-1] * COST
    return equity


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=200_000)
    add_options(parser, RESULTS_DIR / "backtest.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    bars, signals = make_bars(args.bars)
    ours_s, result = best_of(3, lambda: simulate(bars, signals, commission=COST, slippage=0.0, periods_per_year=6048))
    loop_s, equity = best_of(3, lambda: loop(bars, signals.tolist()))
    assert np.allclose(result.equity.to_numpy(), equity, rtol=1e-9), "simulate and the loop disagree"
    ours, plain = args.bars / ours_s, args.bars / loop_s
    print(f"backtest ({args.bars} bars, {result.num_trades} trades):")
    speeds = f"ours {ours / 1e6:.1f}M bars/s, loop {plain / 1e6:.1f}M bars/s"
    print(f"backtest: {speeds}, ratio {ours / plain:.0f} (goal >= {GOAL})")
    record = {"bars": args.bars, "trades": result.num_trades, "ours_bars_per_s": ours, "loop_bars_per_s": plain}
    record |= {"ratio": ours / plain, "goal_ratio": GOAL}
    write(args.results, record, cycles=None, cycles_note="no research cycle: times simulate() on synthetic signals")


if __name__ == "__main__":
    main()
