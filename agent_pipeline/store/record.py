"""The typed records of an operation's metadata: one schema for what a research cycle and a training keep.

The `operations` row stores metadata as JSON (the spec's contract, printed as it is by the API and `--json`);
these pydantic models are how the code reads it: attributes with types, instead of string keys whose meaning
each caller knows. Every field is optional and unknown keys are kept (`extra="allow"`), so rows written before a
field existed read as they are, and nothing a reader does not know is dropped. `Operation.cycle` and
`Operation.training` give them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agent_pipeline.gates import Verdict


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def read(cls, metadata: dict[str, Any] | None) -> Any:
        """The record of `metadata`; a value of the wrong type (an odd or hand-edited row) reads as unset and is
        logged nowhere: the row's JSON itself is never changed by reading it."""
        data = dict(metadata or {})
        for _ in range(len(cls.model_fields) + 1):
            try:
                return cls.model_validate(data)
            except ValidationError as error:
                for problem in error.errors():
                    data.pop(str(problem["loc"][0]), None)
        return cls()


class CycleRecord(_Record):
    """A research cycle's metadata (DESIGN.md's cycle keys and what later issues added)."""

    phase: str | None = None  # designing, training, backtesting, assessing
    strategy_name: str | None = None
    strategy_path: str | None = None
    strategy_url: str | None = None
    designer: str | None = None  # anthropic, offline, user
    symbol: str | None = None
    timeframe: str | None = None
    study_trial: int | None = None
    worker: str | None = None  # the research worker that ran the latest phase
    design_op_id: str | None = None
    training_op_id: str | None = None
    backtest_op_id: str | None = None
    assessment_op_id: str | None = None
    training_task_id: str | None = None
    evaluation: dict[str, Any] | None = None  # {lockbox_fraction, folds, series_end} (series_end: issue 27)
    training_result: dict[str, Any] | None = None
    model_path: str | None = None
    backtest_result: dict[str, Any] | None = None
    backtest_dir: str | None = None
    assessment: dict[str, Any] | None = None
    assessment_path: str | None = None
    report_dir: str | None = None  # the plots drawn at the cycle's end (a URL in the artifact store)
    mlflow_run_id: str | None = None
    design_usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    training_gate: dict[str, Any] | None = None
    backtest_gate: dict[str, Any] | None = None
    # The promotion step (issue 25): a candidate's purged combinatorial paths, trained once on the gpu queue by its
    # training child `paths_op_id`; `paths` holds their figures (engine.paths.measure_paths) or {"reason": ...}.
    paths_op_id: str | None = None
    paths: dict[str, Any] | None = None

    @property
    def training(self) -> dict[str, Any]:
        """The training figures (empty before training ended)."""
        return self.training_result or {}

    @property
    def backtest(self) -> dict[str, Any]:
        """The walk-forward backtest's figures (empty before the backtest ended)."""
        return self.backtest_result or {}

    @property
    def series(self) -> tuple[str, str] | None:
        """(symbol, timeframe) once the design named them."""
        return (self.symbol, self.timeframe) if self.symbol and self.timeframe else None

    def get(self, key: str, /) -> Any:
        """A field by name, for code below the store that reads a mapping (the gates' `Recorded`)."""
        return getattr(self, key, None)

    def verdict(self, gate: str) -> Verdict | None:
        """The recorded verdict of `training` or `backtest` gate, if it ran."""
        key = f"{gate}_gate"
        return Verdict.from_record(key, getattr(self, key))


class TrainingRecord(_Record):
    """A training operation's metadata: its Celery task and what its supervisor saw of the broker."""

    strategy_name: str | None = None
    strategy_path: str | None = None
    celery_task_id: str | None = None
    resent: int = 0  # times the supervisor sent a training whose message the broker lost
    message_missing_since: float | None = None


class ReplayRecord(_Record):
    """What a cycle needs to be run again (issue 25): the `replay` block its GPU training writes into the training's
    result summary (`engine.replay.replay_block`), with the trials its backtest's DSR counted.

    `ktrdr agent replay` reads it; a cycle trained before replays were recorded has none (`of` returns None).
    """

    strategy_yaml: str | None = None  # the document as trained (KTRDR_TRAINING_EPOCHS already applied)
    bars_sha256: str | None = None  # of the research bars, every symbol's in order (`engine.replay.bars_checksum`)
    bars_end: str | None = None  # the series' last bar as the cycle saw it (a universe: its last common date)
    bars_count: int | None = None  # the series' bars then (a universe: its common dates), lockbox included
    symbols: list[str] | None = None
    seed: int | None = None  # every model's weights, dropout and batch order (`trainer.new_model`)
    skill_seed: int | None = None  # the skill test's permutations (`stats.SKILL_SEED`)
    lockbox_fraction: float | None = None
    folds: int | None = None
    batched: bool | None = None  # folds trained together (KTRDR_BATCHED_FOLDS): same models up to float rounding
    torch_threads: int | None = None  # intra-op threads: reduction order, so the last bits, on the CPU
    device: str | None = None  # cpu, or cuda
    device_name: str | None = None  # the GPU's name on cuda
    versions: dict[str, str] | None = None  # python, torch, numpy, pandas and the project
    settings: dict[str, Any] | None = None  # what changes figures or verdicts: epochs override, costs, gates
    trials: int | None = None  # the backtest's DSR: every trial on the series, this one included
    trial_sharpes: list[float] | None = None  # the earlier trials' annualised Sharpe ratios behind its variance

    @classmethod
    def of(cls, training: Mapping[str, Any] | None, backtest: Mapping[str, Any] | None = None) -> ReplayRecord | None:
        """The record of a cycle from its training's and its backtest's result summaries; None without a block."""
        block = (training or {}).get("replay")
        if not isinstance(block, dict):
            return None
        evidence = {k: v for k, v in (backtest or {}).items() if k in ("trials", "trial_sharpes")}
        record: ReplayRecord = cls.read({**block, **evidence})
        return record
