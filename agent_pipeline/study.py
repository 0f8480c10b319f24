"""The optimiser's memory: one Optuna study per symbol/timeframe, kept in the operations database.

A design is one `ask` (`ask_trial`); the cycle's end is its `tell` (`tell_cycle`, called by the chain's two
ends). Optuna's RDBStorage shares `DATABASE_URL` with the operations table: its own tables (`studies`,
`trials`, ...) sit beside `operations`. Both use Alembic's default `alembic_version` table, so ours is brought
up first and Optuna's schema check is skipped: Optuna stamps that table only when it is empty, and would
otherwise refuse our revision as unknown.

The objective is `objective(backtest_result)`, the walk-forward out-of-sample figure; never the lockbox.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from agent_pipeline.operations import Operation

logger = logging.getLogger(__name__)

# Told to a cycle stopped by a gate: below every objective a traded strategy gets (objectives are clipped).
POOR = -3.0
# Objectives are clipped to this range, so one freak figure cannot dominate TPE's good/bad split.
CLIP = (-2.5, 5.0)
# Sharpe units taken off a strategy with no trades; proportionally less up to the backtest gate's minimum.
MISSING_TRADES_PENALTY = 1.0
# Random draws before TPE models the good and bad trials (a third of the benchmark's 24 cycles).
STARTUP_TRIALS = 8
# `Training gate failed: no_skill (..)` -> `training gate: no_skill`.
_GATE = re.compile(r"(Training|Backtest) gate failed: ([a-z_]+)")
# Backtest figures kept on each trial (walk-forward, out of sample), for the study's view.
FIGURES = ("sharpe_ratio", "num_trades", "psr", "deflated_sharpe", "trials", "total_return", "win_rate")

_storages: dict[str, Any] = {}
_lock = threading.Lock()


def objective(backtest: dict[str, Any], min_trades: int | None = None) -> float:
    """Annualised walk-forward OOS Sharpe, minus MISSING_TRADES_PENALTY times the missing share of trades.

    Why this figure: the Sharpe of the stitched out-of-sample record is what the backtest gate and a trader
    judge, and it compares across symbols and timeframes. Alone it rewards luck: one long trade through a
    bull market scores well (the old designer's "passes" were mostly that), so a strategy with fewer trades
    than BACKTEST_GATE_MIN_TRADES loses up to one Sharpe unit (1 trade of 10: -0.9); a negative Sharpe is never
    shrunk towards zero, so not trading is never a way up. PSR and the deflated Sharpe are kept on the trial
    but not optimised: PSR saturates near 1 for every good strategy, and the deflated Sharpe falls as the
    study grows, so the same strategy would score lower the later it was tried.
    """
    if min_trades is None:
        from agent_pipeline.config import get_settings

        min_trades = get_settings().backtest_gate_min_trades
    sharpe = float(backtest.get("sharpe_ratio") or 0.0)
    missing = max(0.0, 1.0 - float(backtest.get("num_trades") or 0) / max(min_trades, 1))
    return min(CLIP[1], max(CLIP[0], sharpe - MISSING_TRADES_PENALTY * missing))


def study_name(symbol: str, timeframe: str) -> str:
    return f"ktrdr:{symbol}:{timeframe}"


def storage(url: str) -> Any:
    """The process's Optuna storage on `url`, after our own schema is up (see the module docstring)."""
    import optuna

    from agent_pipeline.operations import get_store

    with _lock:
        if url not in _storages:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            get_store(url).upgrade()
            kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
            _storages[url] = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
        return _storages[url]


def load_study(symbol: str, timeframe: str, *, url: str, sampler: Any = None) -> optuna.Study:
    """The study of one series (created on first use; concurrent creators get the same one)."""
    import optuna

    name = study_name(symbol, timeframe)
    return optuna.create_study(
        study_name=name, storage=storage(url), sampler=sampler, direction="maximize", load_if_exists=True
    )


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """`tpe` (the optimiser) or `random` (the baseline: every parameter uniform over its distribution)."""
    import warnings

    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate/group are flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group: the indicators' periods are only drawn when used; constant_liar: running trials count as
        # poor, so concurrent cycles spread out instead of piling onto one promising region.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=STARTUP_TRIALS, multivariate=True, group=True, constant_liar=True
        )


def ask_trial(symbol: str, timeframe: str, *, url: str, sampler: str, seed: int) -> optuna.Trial:
    """A new trial of the series' study whose draws depend only on (seed, trial number, past trials).

    The storage numbers trials under a row lock, so concurrent askers never share one; the sampler is then
    seeded from that number, so two processes with the same seed still draw different strategies, and a
    rerun of the same sequence draws the same ones.
    """
    study = load_study(symbol, timeframe, url=url)
    trial = study.ask()
    digest = hashlib.sha256(f"{seed}:{symbol}:{timeframe}:{trial.number}".encode()).digest()
    # Optuna samples lazily, at the trial's first `suggest`, with whatever sampler the study holds then.
    study.sampler = make_sampler(sampler, int.from_bytes(digest[:4]))
    return trial


def tell_cycle(cycle: Operation) -> None:
    """Tell the cycle's outcome to its study; never raises (the cycle's end must not fail because of it).

    A completed cycle is told `objective(backtest_result)`; one stopped by a gate POOR, with the reason as
    the user attribute `failure`; any other failure or a cancel a FAIL state (TPE skips those). Idempotent.
    A cycle designed without a study trial (Claude) is added as a finished trial with the parameters that
    map onto the space, so the optimiser learns from it too.
    """
    meta = cycle.metadata
    if not meta.get("symbol") or not meta.get("timeframe") or not meta.get("designer"):
        return
    try:
        _tell(cycle, meta)
    except Exception:  # noqa: BLE001 - the optimiser is advisory; the cycle's own record stands
        logger.warning("could not tell the study", exc_info=True, extra={"operation_id": cycle.operation_id})


def _tell(cycle: Operation, meta: dict[str, Any]) -> None:
    import optuna
    from optuna.trial import TrialState

    from agent_pipeline.config import get_settings

    url = get_settings().database_url
    study = load_study(meta["symbol"], meta["timeframe"], url=url)
    value, state, attrs = _outcome(cycle)
    attrs |= {"cycle_id": cycle.operation_id, "designer": meta["designer"]}
    number = meta.get("study_trial")
    if not isinstance(number, int):
        if any(t.user_attrs.get("cycle_id") == cycle.operation_id for t in study.get_trials(deepcopy=False)):
            return
        params, distributions = _proposal(meta)
        trial = optuna.trial.create_trial(
            params=params, distributions=distributions, value=value, state=state, user_attrs=attrs
        )
        study.add_trial(trial)
        return
    store = storage(url)
    trial_id = store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name(study.study_name), number)
    if store.get_trial(trial_id).state != TrialState.RUNNING:
        return
    for key, item in attrs.items():
        store.set_trial_user_attr(trial_id, key, item)
    study.tell(number, value if state == TrialState.COMPLETE else None, state=state)


def _outcome(cycle: Operation) -> tuple[float | None, Any, dict[str, Any]]:
    from optuna.trial import TrialState

    backtest = cycle.metadata.get("backtest_result") or {}
    attrs: dict[str, Any] = {key: backtest[key] for key in FIGURES if isinstance(backtest.get(key), int | float)}
    if cycle.status.value == "completed":
        return objective(backtest), TrialState.COMPLETE, attrs
    gate = _GATE.search(cycle.error_message or "")
    if gate:
        return POOR, TrialState.COMPLETE, attrs | {"failure": f"{gate[1].lower()} gate: {gate[2]}"}
    return None, TrialState.FAIL, attrs | {"failure": (cycle.error_message or cycle.status.value)[:200]}


def _proposal(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parameters of a strategy someone else designed, where they fall inside the space."""
    from pathlib import Path

    import yaml

    from agent_pipeline.config import get_settings
    from agent_pipeline.llm.designers.offline import params_of, research_bars, space

    path = Path(str(meta.get("strategy_path") or ""))
    document = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(document, dict):
        return {}, {}
    settings = get_settings()
    bars = research_bars(meta["symbol"], meta["timeframe"], settings.data_dir, settings.lockbox_fraction)
    params = params_of(document, bars)
    return params, {name: space()[name] for name in params}


def study_view(url: str, pairs: Iterable[tuple[str, str]], *, best: int = 3) -> str:
    """Text for Claude's prompt: per series, trial count, best trials with parameters and walk-forward
    figures (with the deflated Sharpe), and failure reasons by family. Empty when no study has trials."""
    from optuna.trial import TrialState

    lines = []
    for symbol, timeframe in sorted(pairs):
        trials = load_study(symbol, timeframe, url=url).get_trials(deepcopy=False)
        if not trials:
            continue
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        ranked = sorted(done, key=lambda t: float(t.value or 0.0), reverse=True)
        lines.append(f"{symbol} {timeframe}: {len(trials)} trials ({len(done)} told a value)")
        for trial in ranked[:best]:
            figures = ", ".join(f"{key} {_fmt(trial.user_attrs[key])}" for key in FIGURES if key in trial.user_attrs)
            params = ", ".join(f"{key}={_fmt(value)}" for key, value in sorted(trial.params.items()))
            lines.append(f"- trial {trial.number}: objective {trial.value:.3g} ({figures}); {params}")
        failures = Counter(str(t.user_attrs["failure"]).split(" (")[0] for t in trials if "failure" in t.user_attrs)
        if failures:
            lines.append("  failures: " + "; ".join(f"{reason} x{count}" for reason, count in failures.most_common(6)))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
