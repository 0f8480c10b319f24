"""The optimiser's memory: one Optuna study per symbol/timeframe (a universe's name is its symbol: one study per
universe, issue 24), kept in the operations database.

A design is one `ask` (`ask_trial`); the cycle's end is its `tell` (`tell_cycle`, from the chain's two ends).
Optuna's tables (`studies`, `trials`, ...) sit beside `operations` under the same `DATABASE_URL`. Both use
Alembic's default `alembic_version` table, so ours is brought up first and Optuna's schema check is skipped:
Optuna stamps that table only when it is empty, and would refuse our revision as unknown.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_pipeline.config import get_settings
from agent_pipeline.engine.strategy import load_strategy
from agent_pipeline.gates import backtest_closeness, stopping_verdict
from agent_pipeline.llm.space import params_of, research_sample, space
from agent_pipeline.store.operations import Operation, get_store
from agent_pipeline.store.record import CycleRecord

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

# A gate stop is told POOR + GATE_SPREAD * (stage + how close it came, 0..1), stage 1 at the backtest gate, 0 at
# the training gate: each stop a gate further on ranks above the ones before it, and below every traded cycle.
POOR, GATE_SPREAD = -3.0, 0.2
# Objectives are clipped to this range, so one freak figure cannot dominate TPE's good/bad split.
CLIP = (-2.5, 5.0)
# Sharpe units taken off a strategy with no trades; proportionally less up to the backtest gate's minimum.
MISSING_TRADES_PENALTY = 1.0
# Random draws before TPE models the good and bad trials (a third of the benchmark's 24 cycles).
STARTUP_TRIALS = 8
# Walk-forward figures kept on each trial, for the study's view; never the lockbox's.
FIGURES = ("sharpe_ratio", "num_trades", "psr", "deflated_sharpe", "trials", "total_return", "win_rate")

_storages: dict[str, Any] = {}
_lock = threading.Lock()


def objective(backtest: dict[str, Any], min_trades: int | None = None) -> float:
    """Annualised walk-forward OOS Sharpe, minus MISSING_TRADES_PENALTY times the missing share of trades.

    Why: the stitched out-of-sample Sharpe is what the backtest gate and a trader judge, comparable across
    series. Alone it rewards luck: one long trade through a bull market scores well (the old designer's passes
    were mostly that), so fewer trades than BACKTEST_GATE_MIN_TRADES cost up to one Sharpe unit (1 of 10: -0.9);
    a negative Sharpe is never shrunk towards zero, so not trading is never a way up. PSR and the deflated
    Sharpe are kept on the trial, not optimised: PSR saturates near 1 for every good strategy, and the deflated
    Sharpe falls as the study grows, so the same strategy would score lower the later it was tried."""
    if min_trades is None:
        min_trades = get_settings().backtest_gate_min_trades
    sharpe = float(backtest.get("sharpe_ratio") or 0.0)
    missing = max(0.0, 1.0 - float(backtest.get("num_trades") or 0) / max(min_trades, 1))
    return min(CLIP[1], max(CLIP[0], sharpe - MISSING_TRADES_PENALTY * missing))


def told(cycle: Operation) -> tuple[float | None, str | None]:
    """The value `tell_cycle` tells for a finished cycle (None: FAIL) and, unless it passed, why not.

    A gate stop is told a poor value ordered by how far it got and how close it came. At the training gate: for
    a `no_skill` stop, 1 - the p-value of the skill test (the closer to skill, the higher); otherwise the mean
    walk-forward accuracy and balanced accuracy. At the backtest gate: its PSR times how close the backtest came
    to the gate's limits (`backtest_closeness`). PSR alone saturates at 1 for every strong strategy, so TPE had
    no direction towards the win rates that pass. A cycle that completed only because `--bypass-gates` let a
    failed gate through is told that gate's stop, never its Sharpe: the optimiser learns the real verdict."""
    meta = cycle.record
    stop = _gate_stop(cycle)
    if stop is None:
        if cycle.status.value == "completed":
            return objective(meta.backtest_result or {}), None
        return None, (cycle.error_message or cycle.status.value)[:200]
    label, reason = stop
    stage = float(label == "Backtest")
    if stage:
        figures = meta.backtest_result or {}
        closeness = float(figures.get("psr") or 0.0) * backtest_closeness(figures)
    else:
        figures = meta.training_result or {}
        pvalue = figures.get("skill_pvalue")
        if reason == "no_skill" and isinstance(pvalue, int | float):
            closeness = 1.0 - float(pvalue)
        else:
            closeness = sum(float(figures.get(key) or 0.0) for key in ("accuracy", "balanced_accuracy")) / 2
    closeness = min(1.0, max(0.0, closeness))
    bypassed = " (bypassed)" if cycle.status.value == "completed" else ""
    return POOR + GATE_SPREAD * (stage + closeness), f"{label.lower()} gate: {reason}{bypassed}"


def _gate_stop(cycle: Operation) -> tuple[str, str] | None:
    """(gate label, reason code) of the first gate verdict that failed, bypassed or not; None when none did."""
    verdict = stopping_verdict(cycle.metadata)
    return (verdict.label, verdict.code) if verdict else None


def storage(url: str) -> Any:
    """The process's Optuna storage on `url`, after our own schema is up (see the module docstring)."""
    import optuna

    with _lock:
        if url not in _storages:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            # TPE's multivariate, group and constant_liar are flagged experimental (stable since Optuna 2.x).
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            get_store(url).upgrade()
            kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
            _storages[url] = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
        return _storages[url]


def load_study(symbol: str, timeframe: str, *, url: str) -> optuna.Study:
    """The study of one series (created on first use; concurrent creators get the same one)."""
    import optuna

    name = f"ktrdr:{symbol}:{timeframe}"
    return optuna.create_study(study_name=name, storage=storage(url), direction="maximize", load_if_exists=True)


def ask_trial(symbol: str, timeframe: str, *, url: str, sampler: str, seed: int) -> optuna.Trial:
    """A new trial of the series' study; its draws depend only on (seed, trial number, past trials).

    The storage numbers trials under a row lock, so concurrent askers never share one; the sampler is then
    seeded from that number, so two processes with the same seed still draw different strategies, and a
    rerun of the same sequence draws the same ones. `sampler`: `tpe` (the optimiser) or `random` (uniform).
    """
    import optuna

    study = load_study(symbol, timeframe, url=url)
    trial = study.ask()
    seeded = int.from_bytes(hashlib.sha256(f"{seed}:{symbol}:{timeframe}:{trial.number}".encode()).digest()[:4])
    # Optuna samples lazily, at the trial's first `suggest`, with whatever sampler the study holds then.
    study.sampler = optuna.samplers.RandomSampler(seed=seeded)
    if sampler == "tpe":
        # group: periods are drawn only for the indicators used; constant_liar: running trials count as poor,
        # so concurrent cycles spread out instead of piling onto one promising region.
        study.sampler = optuna.samplers.TPESampler(
            seed=seeded, n_startup_trials=STARTUP_TRIALS, multivariate=True, group=True, constant_liar=True
        )
    return trial


def tell_cycle(cycle: Operation) -> None:
    """Tell what `told` says of a finished cycle to its study (the reason in the user attribute `failure`).

    Idempotent, never raises. A cycle designed without a trial (Claude, a user's file) is added as a finished
    trial with its parameters inside the space, so the optimiser learns from it too."""
    meta = cycle.record
    if meta.symbol and meta.timeframe and meta.designer:
        try:
            _tell(cycle, meta)
        except Exception:  # noqa: BLE001 - the optimiser is advisory: the cycle's own record stands
            logger.warning("study not told", exc_info=True, extra={"operation_id": cycle.operation_id})


def _tell(cycle: Operation, meta: CycleRecord) -> None:
    import optuna

    url = get_settings().database_url
    study, (value, failure) = load_study(str(meta.symbol), str(meta.timeframe), url=url), told(cycle)
    state = optuna.trial.TrialState.FAIL if value is None else optuna.trial.TrialState.COMPLETE
    backtest = meta.backtest_result or {}
    attrs = {key: backtest[key] for key in FIGURES if isinstance(backtest.get(key), int | float)}
    attrs |= {"cycle_id": cycle.operation_id, "designer": meta.designer} | ({"failure": failure} if failure else {})
    number = meta.study_trial
    if not isinstance(number, int):
        if all(t.user_attrs.get("cycle_id") != cycle.operation_id for t in study.get_trials(deepcopy=False)):
            params = _proposal(meta)
            dists = {name: space()[name] for name in params}
            trial = optuna.trial.create_trial(
                params=params, distributions=dists, value=value, state=state, user_attrs=attrs
            )
            study.add_trial(trial)
        return
    store = storage(url)
    trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study.study_name), number)
    if store.get_trial(trial_id).state == optuna.trial.TrialState.RUNNING:
        for key, item in attrs.items():
            store.set_trial_user_attr(trial_id, key, item)
        study.tell(number, value, state=state)


def _proposal(meta: CycleRecord) -> dict[str, Any]:
    """The parameters of a strategy someone else designed (its saved file), where they fall inside the space."""
    path, settings = Path(str(meta.strategy_path or "")), get_settings()
    if not path.is_file():
        return {}
    strategy = load_strategy(path)
    bars = research_sample(strategy.symbol, strategy.timeframe, strategy.universe is not None, settings)
    return params_of(strategy.model_dump(mode="json"), bars)


def study_view(url: str, pairs: Iterable[tuple[str, str]], *, best: int = 3) -> str:
    """Text for Claude's prompt: per series the trial count, the best trials with their parameters and
    walk-forward figures (the deflated Sharpe among them), and the failure reasons by family."""
    import optuna

    lines, names = [], set(optuna.get_all_study_names(storage(url)))
    for symbol, timeframe in sorted(p for p in pairs if f"ktrdr:{p[0]}:{p[1]}" in names):
        trials = load_study(symbol, timeframe, url=url).get_trials(deepcopy=False)
        ranked = sorted((t for t in trials if t.value is not None), key=lambda t: float(t.value or 0), reverse=True)
        lines.append(f"{symbol} {timeframe}: {len(trials)} trials ({len(ranked)} told a value)")
        for trial in ranked[:best]:
            figures = ", ".join(f"{key} {trial.user_attrs[key]:.3g}" for key in FIGURES if key in trial.user_attrs)
            params = ", ".join(f"{key}={value:.3g}" for key, value in sorted(trial.params.items()))
            lines.append(f"- trial {trial.number}: objective {trial.value:.3g} ({figures}); {params}")
        failures = Counter(str(t.user_attrs["failure"]).split(" (")[0] for t in trials if "failure" in t.user_attrs)
        if failures:
            lines.append("  failures: " + "; ".join(f"{reason} x{count}" for reason, count in failures.most_common(6)))
    return "\n".join(lines)
