"""A cycle's report: PNG plots beside its artifacts, and one self-contained HTML page.

`write_plots` draws what the cycle has produced so far (each plot is skipped when its data is absent):
- `training_curves.png`: loss and accuracy per epoch, one panel per walk-forward fold and the final model;
- `fold_metrics.png`: out-of-sample accuracy and balanced accuracy per fold against the majority baseline and
  chance for the classes the out-of-sample labels hold (1/2 for two classes, 1/3 for three);
- `walk_forward.png`: the price (a universe's equal-weight index) with each fold's training span and out-of-sample
  window;
- `equity.png`: out-of-sample equity against buy-and-hold, with the fold boundaries;
- `drawdown.png`: the strategy's drawdown (and buy-and-hold's, faint);
- `trades.png`: the normalised price with the strategy's entries and exits;
- `paths.png`: a candidate's purged combinatorial path Sharpe ratios (issue 25), their median, zero and the
  walk-forward's own Sharpe.
The figures come from the training operation's `result_summary` (`folds`, `history`), the backtest's
`equity.csv` and the cycle's `paths`. matplotlib (Agg canvas, no pyplot state) is imported only inside the
drawing functions.
"""

from __future__ import annotations

import base64
import html
import logging
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_pipeline.config import get_settings
from agent_pipeline.engine.artifacts import child_of, fetch, publish_folder, work_folder
from agent_pipeline.engine.files import atomic_write_with
from agent_pipeline.errors import ArtifactNotFoundError, DataError, KtrdrError, OperationNotFoundError
from agent_pipeline.insight.summary import report_rows
from agent_pipeline.insight.tracking import log_cycle
from agent_pipeline.store.operations import Operation, OperationsStore, OperationType

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

# Plot file names, in the order the report shows them.
PLOT_NAMES = (
    "training_curves.png", "fold_metrics.png", "walk_forward.png", "equity.png", "drawdown.png", "trades.png",
    "paths.png",
)  # fmt: skip
# Figure size (inches) and resolution of every plot.
FIGSIZE, DPI = (10.0, 4.0), 100
# The metadata key under which a cycle records its report folder.
REPORT_DIR_KEY = "report_dir"


def report_dir(cycle: Operation, artifacts_dir: Path) -> Path:
    """Where a cycle's plots go: `<artifacts_dir>/reports/<cycle_id>/`."""
    return Path(artifacts_dir) / "reports" / cycle.operation_id


def write_plots(store: OperationsStore, cycle_id: str, artifacts_dir: Path | None = None) -> list[Path]:
    """Draw every plot the cycle's data allows into its report folder; returns the files written.

    Called when a cycle ends (the LEAD's finalize) and lazily by `ktrdr agent report` and the API.
    Records the folder's URL in the cycle's metadata under `report_dir`: in the artifact store (uploaded from
    this host's working folder when the store is remote), or `artifacts_dir`'s when one is given.
    """

    cycle = store.get(cycle_id)
    parts = ("reports", cycle.operation_id)
    folder = report_dir(cycle, Path(artifacts_dir)) if artifacts_dir else work_folder(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    training = _training_summary(store, cycle) or {}
    drawers = (
        (_draw_training, training),
        (_draw_fold_metrics, training),
        (_draw_walk_forward, {**training, **_series(cycle)}),
    )
    for (draw, data), name in zip(drawers, PLOT_NAMES, strict=False):
        if data and draw(data, folder / name):
            written.append(folder / name)
    equity = _equity(cycle)
    if equity is not None:
        written += _draw_backtest(equity, folder)
    if draw_paths(cycle, folder / "paths.png"):
        written.append(folder / "paths.png")
    url = folder.resolve().as_uri() if artifacts_dir else publish_folder(folder, *parts)
    store.merge_metadata(cycle_id, {REPORT_DIR_KEY: url})
    return written


def publish(store: OperationsStore, cycle_id: str) -> list[Path]:
    """What a finished cycle leaves for people: its plots, and an MLflow run when MLFLOW_TRACKING_URI is set.

    Called once when a cycle ends (finalize, and the failure errback). Never raises: a plot or a tracking
    server that fails is logged with the traceback, and the cycle's outcome stands.
    """

    plots: list[Path] = []
    try:
        plots = write_plots(store, cycle_id)
        log_cycle(store, cycle_id, plots)
    except Exception:  # reporting is best effort: the research result is already recorded
        logger.exception("cycle report not published", extra={"cycle_id": cycle_id})
    return plots


def plots_of(store: OperationsStore, cycle_id: str) -> list[Path]:
    """The cycle's plots, drawn now if it has none yet (cycles that ended before reports existed): for the CLI's
    `agent report`, which a user runs to make a report; the API and the dashboard read with `stored_plots`."""
    return stored_plots(store, cycle_id) or write_plots(store, cycle_id)


def stored_plots(store: OperationsStore, cycle_id: str) -> list[Path]:
    """The plots drawn when the cycle ended (`publish`), never drawing any: what a GET may show."""
    return [path for path in _stored_plots(store.get(cycle_id).record.report_dir) if path.is_file()]


def _stored_plots(folder: str | None) -> list[Path]:
    """The plots in a report folder (a URL, or an older row's host path), fetched to this host if remote."""
    if not folder:
        return []
    try:
        local = fetch(folder)
    except ArtifactNotFoundError:
        return []
    return [local / name for name in PLOT_NAMES]


def _training_summary(store: OperationsStore, cycle: Operation) -> dict[str, Any] | None:
    training_id = cycle.record.training_op_id
    return store.get(training_id).result_summary if training_id else None


def _equity(cycle: Operation) -> pd.DataFrame | None:
    import pandas as pd

    folder = cycle.record.backtest_dir
    if not folder:
        return None
    try:
        path = fetch(child_of(folder, "equity.csv"))
    except ArtifactNotFoundError:
        return None
    frame = pd.read_csv(path, parse_dates=["timestamp"])
    return frame if {"timestamp", "equity"} <= set(frame.columns) and len(frame) else None


def _figure(rows: int = 1, cols: int = 1, height: float = FIGSIZE[1]) -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no pyplot global state, safe in worker threads
    return figure, figure.subplots(rows, cols, squeeze=False)


def _save(figure: Figure, path: Path) -> None:
    """Write a plot as PNG atomically: the dashboard may be reading the previous one."""
    atomic_write_with(path, lambda handle: figure.savefig(handle, format="png"))


def _draw_training(summary: dict[str, Any], path: Path) -> bool:
    """Loss and accuracy per epoch for each fold (when walk-forward) and the final model."""
    panels = [(f"fold {f.get('fold')}", f.get("history") or []) for f in summary.get("folds") or []]
    panels.append(("final model", summary.get("history") or []))
    panels = [(title, history) for title, history in panels if history]
    if not panels:
        return False
    figure, axes = _figure(1, len(panels), height=3.2)
    for ax, (title, history) in zip(axes[0], panels, strict=True):
        epochs = [h.get("epoch") for h in history]
        ax.plot(epochs, [h.get("train_loss") for h in history], label="train loss")
        ax.plot(epochs, [h.get("val_loss") for h in history], label="val loss")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        accuracy = [h.get("val_accuracy") for h in history]
        if any(a is not None for a in accuracy):
            twin = ax.twinx()
            twin.plot(epochs, accuracy, color="tab:green", linestyle="--", label="val accuracy")
            twin.set_ylim(0, 1)
    axes[0][0].legend(fontsize=7, loc="upper right")
    figure.suptitle("Training curves (loss; dashed: validation accuracy)")
    _save(figure, path)
    return True


def _draw_fold_metrics(summary: dict[str, Any], path: Path) -> bool:
    figure = fold_metrics_figure(summary)
    if figure is None:
        return False
    _save(figure, path)
    return True


def fold_metrics_figure(summary: dict[str, Any]) -> Figure | None:
    """Out-of-sample accuracy and balanced accuracy per fold, against the majority-class baseline and chance for
    the training's classes; None without fold metrics."""
    folds = [f for f in summary.get("folds") or [] if isinstance(f.get("accuracy"), int | float)]
    if not folds:
        return None
    figure, axes = _figure()
    ax = axes[0][0]
    positions = range(len(folds))
    bars = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("baseline_accuracy", "majority"))
    for offset, (key, label) in enumerate(bars):
        values = [float(f.get(key) or 0.0) for f in folds]
        ax.bar([p + (offset - 1) * 0.27 for p in positions], values, width=0.27, label=label)
    classes = class_count(summary)
    if classes:
        ax.axhline(1 / classes, color="grey", linestyle="--", linewidth=1, label=f"chance (1/{classes})")
    ax.set_xticks(list(positions), [f"fold {f.get('fold')}" for f in folds])
    ax.set_ylim(0, 1)
    kinds = f", {classes} classes" if classes else ""
    ax.set_title(f"Walk-forward out-of-sample classification per fold ({len(folds)} folds{kinds})")
    ax.legend(fontsize=8, ncols=4)
    return figure


def class_count(summary: dict[str, Any]) -> int | None:
    """The label classes a training's out-of-sample rows hold: its `n_classes` (issue 23), else the classes its
    final model saw at all; the class distribution always lists all three, a HOLD of 0 included."""
    recorded = summary.get("n_classes")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return recorded
    splits = (summary.get("class_distribution") or {}).values()
    seen = {name for split in splits if isinstance(split, dict) for name, count in split.items() if count}
    return len(seen) or None


def _series(cycle: Operation) -> dict[str, Any]:
    """The cycle's price series (close) for the walk-forward layout, when its data can be loaded."""

    symbol, timeframe = cycle.record.symbol, cycle.record.timeframe
    if not symbol or not timeframe:
        return {}
    try:
        return {"close": _close(str(symbol), str(timeframe))}
    except (KtrdrError, KeyError, OSError):
        return {}


def _close(symbol: str, timeframe: str) -> pd.Series:
    """A series' close, or a universe's equal-weight index (each symbol from 1) on its common calendar."""
    from agent_pipeline.engine.data import load_bars  # lazy: start-up cost (pandas)
    from agent_pipeline.engine.pooled import common_calendar, universe_series  # lazy: start-up cost (pandas)

    data_dir = get_settings().data_dir
    try:
        return load_bars(symbol, timeframe, data_dir)["close"]
    except DataError:
        series = universe_series(symbol, timeframe, data_dir)  # a universe strategy's symbol is its name
    calendar = common_calendar(series)
    closes = [frame["close"].reindex(calendar) for frame in series.values()]
    return sum(close / close.iloc[0] for close in closes) / len(closes)


def _draw_walk_forward(data: dict[str, Any], path: Path) -> bool:
    """The price with each fold's training span and out-of-sample window: what was learned from and traded on."""
    import pandas as pd

    folds, close = data.get("folds") or [], data.get("close")
    if not folds or close is None:
        return False
    figure, axes = _figure()
    ax = axes[0][0]
    ax.plot(close.index, close.to_numpy(), color="black", linewidth=0.7, label="close")
    for number, fold in enumerate(folds):
        start, end = pd.Timestamp(fold["test_start"]), pd.Timestamp(fold["test_end"])
        ax.axvspan(start, end, color=f"C{number}", alpha=0.2, label=f"fold {fold.get('fold')} out of sample")
        ax.axvline(pd.Timestamp(fold["train_end"]), color=f"C{number}", linestyle=":", linewidth=1)
    research_end = max(pd.Timestamp(f["test_end"]) for f in folds)
    ax.set_xlim(close.index[0], research_end)
    ax.set_title("Walk-forward layout (dotted: end of each fold's training data)")
    ax.legend(fontsize=7, ncols=2)
    _save(figure, path)
    return True


def _fold_starts(equity: pd.DataFrame) -> list[Any]:
    if "fold" not in equity.columns:
        return []
    changed = equity["fold"].ne(equity["fold"].shift())
    return list(equity.loc[changed, "timestamp"].iloc[1:])


def _draw_backtest(equity: pd.DataFrame, folder: Path) -> list[Path]:
    when, strategy = equity["timestamp"], equity["equity"] / equity["equity"].iloc[0]
    hold = equity["buy_and_hold"] / equity["buy_and_hold"].iloc[0] if "buy_and_hold" in equity.columns else None
    boundaries = _fold_starts(equity)
    figure, axes = _figure()
    ax = axes[0][0]
    ax.plot(when, strategy, label="strategy (out of sample)")
    if hold is not None:
        ax.plot(when, hold, label="buy and hold", alpha=0.7)
    for start in boundaries:
        ax.axvline(start, color="grey", linestyle=":", linewidth=1)
    ax.set_title("Out-of-sample equity" + (" (dotted: fold boundaries)" if boundaries else ""))
    ax.legend()
    _save(figure, folder / "equity.png")
    written = [folder / "equity.png"]
    figure, axes = _figure()
    ax = axes[0][0]
    ax.fill_between(when, strategy / strategy.cummax() - 1, 0, alpha=0.5, label="strategy")
    if hold is not None:
        ax.plot(when, hold / hold.cummax() - 1, color="grey", alpha=0.5, label="buy and hold")
    ax.set_title("Drawdown")
    ax.legend()
    _save(figure, folder / "drawdown.png")
    written.append(folder / "drawdown.png")
    if hold is not None and "position" in equity.columns:
        _draw_trades(when, hold, equity["position"], folder / "trades.png")
        written.append(folder / "trades.png")
    return written


def _draw_trades(when: pd.Series, price: pd.Series, position: pd.Series, path: Path) -> None:
    """The normalised price with a marker wherever the position changes: long, short or flat."""
    figure, axes = _figure()
    ax = axes[0][0]
    ax.plot(when, price, color="black", linewidth=0.8, label="price (normalised)")
    change = position.ne(position.shift().fillna(0))
    for value, marker, color, label in ((1, "^", "tab:green", "go long"), (-1, "v", "tab:red", "go short")):
        at = change & position.eq(value)
        ax.scatter(when[at], price[at], marker=marker, color=color, s=30, label=label, zorder=3)
    flat = change & position.eq(0)
    ax.scatter(when[flat], price[flat], marker="x", color="grey", s=20, label="go flat", zorder=3)
    ax.set_title("Trades on the price")
    ax.legend(fontsize=8)
    _save(figure, path)


def draw_paths(cycle: Operation, path: Path) -> bool:
    """The Sharpe ratio of each purged combinatorial path of a candidate, sorted, with their median, zero and the
    walk-forward record's Sharpe; the title says its promotion. False when the cycle has no path figures."""
    record = cycle.record
    sharpes = sorted(float(s) for s in (record.paths or {}).get("sharpes") or [])
    if not sharpes:
        return False
    figure, axes = _figure()
    ax = axes[0][0]
    colors = ["tab:green" if s > 0 else "tab:red" for s in sharpes]
    ax.bar(range(1, len(sharpes) + 1), sharpes, color=colors, alpha=0.8, label="path Sharpe (sorted)")
    median = statistics.median(sharpes)
    ax.axhline(median, color="black", linestyle="--", linewidth=1, label=f"median {median:.2f}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    walk_forward = record.backtest.get("sharpe_ratio")
    if isinstance(walk_forward, int | float):
        ax.axhline(walk_forward, color="tab:blue", linestyle=":", linewidth=1, label=f"walk-forward {walk_forward:.2f}")
    ax.set_xticks(range(1, len(sharpes) + 1))
    ax.set_xlabel("path")
    ax.set_ylabel("annualised Sharpe")
    status = ((cycle.result_summary or {}).get("promotion") or {}).get("status") or "not a candidate now"
    ax.set_title(f"Purged combinatorial paths: Sharpe of {len(sharpes)} paths (promotion: {status})")
    ax.legend(fontsize=8)
    _save(figure, path)
    return True


def summary_lines(cycle: Operation) -> list[tuple[str, str]]:
    """(label, value) lines of the report's summary: the same rows as the CLI's final report."""
    return report_rows(cycle)


def html_page(cycle: Operation, plots: list[Path]) -> str:
    """One self-contained HTML page: the summary table and every plot inline (base64 PNG)."""
    rows = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td><pre>{html.escape(value)}</pre></td></tr>"
        for label, value in summary_lines(cycle)
    )
    images = "\n".join(
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{html.escape(path.name)}</figcaption></figure>'
        for path in plots
    )
    title = html.escape(f"Research cycle {cycle.operation_id} ({cycle.status.value})")
    return PAGE.format(title=title, rows=rows, images=images)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 1100px; }}
th {{ text-align: left; vertical-align: top; padding-right: 1rem; white-space: nowrap; }}
pre {{ margin: 0; white-space: pre-wrap; font-family: inherit; }}
img {{ max-width: 100%; border: 1px solid #ddd; }} figure {{ margin: 1.5rem 0; }}
</style></head>
<body><h1>{title}</h1>
<table>
{rows}
</table>
{images}
</body></html>
"""


def require_cycle(store: OperationsStore, cycle_id: str) -> Operation:
    """The research cycle `cycle_id`.

    Raises:
        OperationNotFoundError: unknown id, or an operation that is not a research cycle.
    """

    operation = store.get(cycle_id)
    if operation.operation_type != OperationType.AGENT_RESEARCH:
        raise OperationNotFoundError(f"{cycle_id} is a {operation.operation_type.value} operation, not a cycle")
    return operation
