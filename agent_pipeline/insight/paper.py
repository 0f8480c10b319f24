"""What people see of a paper account (issue 27): its status, and its forward equity drawn against the backtest.

Read-only: nothing here steps or books. The expected path is the backtest's: after k forward bars, the capital
grown by k times the backtest's mean return per bar, with the band of +/- z standard deviations of a sum of k
returns (`engine.paper.expected_band`, z = 1.96). The path H0 of the decay alarm (the backtest mean shrunk by its
trials, `engine.decay`) is drawn too: the alarm fires when the forward returns fall credibly below it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from agent_pipeline.engine.decay import DecayBaseline
from agent_pipeline.engine.paper import BAND_Z, expected_band
from agent_pipeline.store.paper import PaperAccount, get_account
from agent_pipeline.store.paper_ledger import EquityPoint, equity_curve, fills, positions

if TYPE_CHECKING:
    from agent_pipeline.store.base import StoreBase

# Fills a status shows (the latest).
STATUS_FILLS = 20
# Size of the dashboard's chart, in inches at 100 dpi.
CHART_SIZE = (9.0, 4.0)


def baseline_of(account: PaperAccount) -> DecayBaseline:
    """The backtest's per-bar figures the account is judged against (kept in its decay monitor)."""
    return DecayBaseline(**account.decay["baseline"])


def expected(account: PaperAccount, bars: int) -> dict[str, Any]:
    """The backtest's expected equity after `bars` forward bars, its band, and the figures behind them."""
    baseline = baseline_of(account)
    band = expected_band(account.capital, baseline.backtest_mean, baseline.backtest_std, max(bars, 1))
    last = -1 if bars else None  # no bar yet: the capital itself
    return {
        "bars": bars,
        "equity": float(band.expected[last]) if last else account.capital,
        "low": float(band.low[last]) if last else account.capital,
        "high": float(band.high[last]) if last else account.capital,
        "z": BAND_Z,
        "backtest_mean": baseline.backtest_mean,
        "backtest_std": baseline.backtest_std,
        "shrunk_mean": baseline.shrunk_mean,
        "trials": baseline.trials,
    }


def account_view(store: StoreBase, account_id: str) -> dict[str, Any]:
    """An account's status: the account, its first booked bar, positions, latest fills, and where the backtest
    expected its equity now (`ktrdr paper status --json`, `GET /api/v1/paper/{id}`).

    Raises:
        PaperAccountNotFoundError, DatabaseUnavailableError.
    """
    account = get_account(store, account_id)
    curve = equity_curve(store, account_id)
    return {
        **account.to_dict(),
        "first_bar": str(curve[0].at) if curve else None,
        "positions": [
            {"symbol": p.symbol, "quantity": p.quantity, "entry_price": p.entry_price, "entry_bar": _text(p.entry_bar)}
            for p in positions(store, account_id).values()
        ],
        "fills": [
            {
                "at": str(f.at),
                "seq": f.seq,
                "symbol": f.symbol,
                "quantity": f.quantity,
                "price": f.price,
                "cost": f.cost,
                "reason": f.reason,
            }
            for f in fills(store, account_id, limit=STATUS_FILLS)
        ],  # fmt: skip
        "expected": expected(account, account.bars),
    }


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def equity_chart(account: PaperAccount, curve: list[EquityPoint]) -> str:
    """The forward equity against the backtest's expected path, its band and H0's path, as an SVG document; the
    decay alarm's bar is marked when it fired."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG  # lazy: start-up cost (matplotlib)
    from matplotlib.figure import Figure  # lazy: start-up cost (matplotlib)

    figure = Figure(figsize=CHART_SIZE, dpi=100, layout="constrained")
    FigureCanvasSVG(figure)  # no pyplot state: safe in the API's threads
    ax = figure.subplots()
    bars = list(range(0, len(curve) + 1))
    baseline = baseline_of(account)
    band = expected_band(account.capital, baseline.backtest_mean, baseline.backtest_std, max(len(curve), 1))
    capital = [account.capital]
    ax.fill_between(bars, capital + list(band.low[: len(curve)]), capital + list(band.high[: len(curve)]),
                    color="tab:blue", alpha=0.15, label=f"backtest band (±{BAND_Z:g} sd)")  # fmt: skip
    ax.plot(bars, capital + list(band.expected[: len(curve)]), color="tab:blue", linestyle="--", label="backtest path")
    h0 = [account.capital * (1 + k * baseline.shrunk_mean) for k in bars]
    ax.plot(bars, h0, color="tab:gray", linestyle=":", label="decay alarm's H0 (shrunk mean)")
    ax.plot(bars, capital + [point.equity for point in curve], color="black", label="paper equity")
    alarm = next((point.bar for point in curve if point.at == account.decayed_bar), None)
    if alarm is not None:
        ax.axvline(alarm + 1, color="tab:red", label=f"decay alarm ({account.decayed_bar})")
    ax.set_xlabel("forward bars")
    ax.set_ylabel("equity (paper)")
    ax.set_title(f"Paper account {account.id}: {account.series}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()
