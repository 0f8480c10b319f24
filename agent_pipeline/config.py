"""One typed Settings object, read from the environment and checked at start-up."""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_pipeline.errors import ConfigurationError

logger = logging.getLogger(__name__)

# Where the embedded default keeps its SQLite file, data, strategies and models.
DEFAULT_HOME = Path(".ktrdr")

# KTRDR_SCHEDULE: an interval such as 15s, 10m, 1h, or `continuous` (see pipeline/schedule.py).
CONTINUOUS = "continuous"
# Seconds between two ticks in `continuous` mode: how soon a freed slot is refilled.
CONTINUOUS_TICK = 5.0
# The shortest interval accepted: a tick reads the database and must not run back to back.
MIN_INTERVAL = 1.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def interval_seconds(schedule: str) -> float:
    """Seconds between ticks for a KTRDR_SCHEDULE value.

    Raises:
        ValueError: not `continuous` nor a number with a unit (s, m, h, d), or shorter than MIN_INTERVAL.
    """
    if schedule == CONTINUOUS:
        return CONTINUOUS_TICK
    match = INTERVAL.match(schedule.strip())
    if match is None:
        raise ValueError("must be an interval such as 15s, 10m, 1h, or 'continuous'")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds < MIN_INTERVAL:
        raise ValueError(f"must be at least {MIN_INTERVAL:g}s")
    return seconds


# Settings that are no longer read -> what replaced them; one warning line each when still set.
RETIRED = {
    "TRAINING_GATE_MIN_BALANCED_ACCURACY": (
        "the training gate now tests skill against chance: set TRAINING_GATE_MAX_P (default 0.05) instead"
    ),
}


def _env(name: str) -> AliasChoices:
    """Use a conventional env name (no KTRDR_ prefix), e.g. DATABASE_URL or upstream gate names."""
    return AliasChoices(name)


class Settings(BaseSettings):
    """Every tunable of the pipeline; each is documented in the README's Configuration table."""

    model_config = SettingsConfigDict(env_prefix="KTRDR_", extra="ignore", populate_by_name=True)

    home: Path = DEFAULT_HOME
    database_url: str = Field(default="", validation_alias=_env("DATABASE_URL"))
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = "redis://localhost:6379/0"
    data_dir: Path | None = None
    strategies_dir: Path | None = None
    artifacts_dir: Path | None = None
    # Where models, checkpoints, backtests, reports and strategies go (issue 16): file:// (default: artifacts_dir)
    # or s3://bucket/prefix, with the endpoint and credentials from the standard AWS_* variables.
    artifacts_url: str | None = None
    # Where `ktrdr data import` / `data synth` also publish series, and workers fetch them from (unset: local only).
    data_url: str | None = None

    designer: str = "auto"
    model: str = "sonnet"
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias=_env("ANTHROPIC_API_KEY"))
    design_max_repairs: int = Field(default=3, ge=0, le=10)
    llm_timeout: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    daily_budget_usd: float = Field(default=5.0, ge=0)

    max_concurrent_cycles: int = Field(default=1, ge=1, le=64)
    poll_interval: float = Field(default=2.0, gt=0, le=300)
    heartbeat_stale_after: float = Field(default=300.0, ge=10)
    training_time_limit: int = Field(default=6 * 3600, ge=60)
    training_epochs: int | None = Field(default=None, ge=1, le=1000)
    # CPU threads one training uses (0: torch's default, one per core). These small models train as fast on one
    # thread, and two trainings on one host with two threads each ran 6x slower (issue 17).
    torch_threads: int = Field(default=1, ge=0, le=256)
    # Train a cycle's fold models and final model together, with stacked weights (issue 15); false trains them
    # one after another. Same models up to float rounding; kept so a bench can compare the two in one run.
    batched_folds: bool = True
    api_token: SecretStr | None = None
    seed: int = 7

    training_gate_min_accuracy: float = Field(
        default=0.45, ge=0, le=1, validation_alias=_env("TRAINING_GATE_MIN_ACCURACY")
    )
    training_gate_max_loss: float = Field(default=0.8, gt=0, validation_alias=_env("TRAINING_GATE_MAX_LOSS"))
    training_gate_min_loss_decrease: float = Field(
        default=0.2, ge=-1, le=1, validation_alias=_env("TRAINING_GATE_MIN_LOSS_DECREASE")
    )
    backtest_gate_min_win_rate: float = Field(
        default=0.45, ge=0, le=1, validation_alias=_env("BACKTEST_GATE_MIN_WIN_RATE")
    )
    backtest_gate_max_drawdown: float = Field(
        default=0.4, ge=0, le=1, validation_alias=_env("BACKTEST_GATE_MAX_DRAWDOWN")
    )
    backtest_gate_min_sharpe: float = Field(default=-0.5, validation_alias=_env("BACKTEST_GATE_MIN_SHARPE"))
    # Checked after the spec's checks, only when the metric is present (see gates.py): the largest p-value of the
    # test that the out-of-sample balanced accuracy beats chance that still counts as skill.
    training_gate_max_p: float = Field(default=0.05, gt=0, le=1, validation_alias=_env("TRAINING_GATE_MAX_P"))
    backtest_gate_min_trades: int = Field(default=10, ge=0, validation_alias=_env("BACKTEST_GATE_MIN_TRADES"))

    # Evaluation you can trust: the last `lockbox_fraction` of every series is traded once per finished cycle
    # and never shown to the loop; walk-forward folds split the research period before it.
    lockbox_fraction: float = Field(default=0.2, gt=0, le=0.5)
    walk_forward_folds: int = Field(default=4, ge=2, le=10)

    # The promotion step (issue 25): a candidate (DSR >= 0.95, every gate passed) is a discovery only when its
    # series' probability of backtest overfitting is at most max_pbo and at least min_paths_positive of its purged
    # combinatorial paths have a Sharpe above 0 (their median too). PBO needs pbo_min_trials trials.
    max_pbo: float = Field(default=0.2, ge=0, le=1)
    min_paths_positive: float = Field(default=0.8, gt=0, le=1)
    pbo_min_trials: int = Field(default=8, ge=2, le=1000)

    # How often a research worker fails stale rows on its own timer (issue 11): a lost cycle is failed within
    # heartbeat_stale_after + reconcile_interval seconds, with nobody calling anything.
    reconcile_interval: float = Field(default=30.0, gt=0, le=60)

    # The unattended loop (issue 10): `15s`, `10m`, `1h` or `continuous` drives `ktrdr beat`; unset = off.
    schedule: str | None = None

    # Paper trading (issue 27): seconds between two steps of every open paper account by `ktrdr beat`.
    paper_interval: float = Field(default=60.0, ge=MIN_INTERVAL, le=86400)

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value:
            interval_seconds(value)
        return value or None

    @field_validator("designer")
    @classmethod
    def _check_designer(cls, value: str) -> str:
        if value not in ("auto", "anthropic", "offline", "random"):
            raise ValueError("must be one of auto, anthropic, offline, random")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("must be a redis:// URL (memory:// is for the embedded run)")
        return value

    @field_validator("result_backend")
    @classmethod
    def _check_result_backend(cls, value: str) -> str:
        # Cancel flags and training locks live in the result backend: they need Redis across processes.
        if not value.startswith(("redis://", "rediss://", "cache+memory://")):
            raise ValueError("must be a redis:// URL (cache+memory:// is for the embedded run)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// SQLAlchemy URL")
        return value

    @field_validator("artifacts_url", "data_url")
    @classmethod
    def _check_store_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("file://", "s3://")):
            raise ValueError("must be a file:// or s3://bucket/prefix URL")
        if value and value.startswith("s3://") and not value[5:].split("/")[0]:
            raise ValueError("an s3:// URL names a bucket: s3://bucket/prefix")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'ktrdr.db'}"
        self.data_dir = self.data_dir or self.home / "data"
        self.strategies_dir = self.strategies_dir or self.home / "strategies"
        self.artifacts_dir = self.artifacts_dir or self.home / "artifacts"
        self.artifacts_url = self.artifacts_url or self.artifacts_dir.resolve().as_uri()
        return self

    @property
    def work_dir(self) -> Path:
        """This host's working folder: local copies of what a remote store holds (models, data, reports)."""
        return self.home / "work"

    @property
    def effective_designer(self) -> str:
        """`anthropic` or `offline`: what `auto` resolves to given the API key."""
        if self.designer != "auto":
            return self.designer
        return "anthropic" if self.anthropic_api_key else "offline"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "settings"
    return f"invalid setting {field}: {first['msg']}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment.

    Raises:
        ConfigurationError: a value is malformed; the message names the setting, never its value.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    for name, replacement in RETIRED.items():
        if name in os.environ:
            logger.warning("%s is no longer read; %s", name, replacement)
    return settings


def reset_settings() -> None:
    """Forget cached settings (tests and the embedded runner change the environment)."""
    get_settings.cache_clear()
