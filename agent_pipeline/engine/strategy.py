"""The strategy grammar: a YAML document validated by a pydantic schema with precise messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from agent_pipeline.engine.files import atomic_write
from agent_pipeline.errors import StrategyValidationError

# Names become file names: a strict pattern keeps `../../etc/passwd` and friends from ever reaching a path.
NAME_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
# A universe's name (engine.universe.NAME_PATTERN: no dot, which separates it from a column in `NAME.S00`).
UNIVERSE_PATTERN = r"^[A-Za-z0-9_-]{1,20}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Indicator(_Strict):
    """Common fields; `name` is the feature id the fuzzy sets refer to (defaults to `<type>_<period>`)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN.pattern)

    @property
    def feature_id(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        period = getattr(self, "period", None)
        kind = getattr(self, "type")  # noqa: B009 - every subclass declares its literal `type`
        return f"{kind}_{period}" if period is not None else str(kind)


class _Periodic(_Indicator):
    period: int = Field(default=14, ge=2, le=500)


class RSI(_Periodic):
    type: Literal["rsi"]


class SMA(_Periodic):
    type: Literal["sma"]


class EMA(_Periodic):
    type: Literal["ema"]


class ROC(_Periodic):
    type: Literal["roc"]


class ATR(_Periodic):
    type: Literal["atr"]


class CCI(_Periodic):
    type: Literal["cci"]


class ADX(_Periodic):
    type: Literal["adx"]


class WilliamsR(_Periodic):
    type: Literal["williams_r"]


class OBV(_Indicator):
    type: Literal["obv"]


class MACD(_Indicator):
    type: Literal["macd"]
    fast: int = Field(default=12, ge=2, le=200)
    slow: int = Field(default=26, ge=3, le=400)
    signal: int = Field(default=9, ge=2, le=100)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MACD:
        if self.fast >= self.slow:
            raise ValueError("fast must be < slow")
        return self


class Bollinger(_Periodic):
    type: Literal["bollinger"]
    period: int = Field(default=20, ge=2, le=500)
    std: float = Field(default=2.0, gt=0, le=5)


class Stochastic(_Periodic):
    type: Literal["stochastic"]
    smooth: int = Field(default=3, ge=1, le=50)


Indicator = Annotated[
    RSI | SMA | EMA | ROC | ATR | CCI | ADX | WilliamsR | OBV | MACD | Bollinger | Stochastic,
    Field(discriminator="type"),
]
INDICATOR_TYPES = (
    "rsi", "sma", "ema", "macd", "bollinger", "atr", "stochastic", "roc", "obv", "williams_r", "cci", "adx",
)  # fmt: skip
# The columns each indicator reads (engine.features.PRIMARY). A close-only series (issue 24) has the close alone,
# so only the indicators that read nothing else apply to it.
_RANGE = ("high", "low", "close")
INDICATOR_INPUTS: dict[str, tuple[str, ...]] = {
    "rsi": ("close",), "sma": ("close",), "ema": ("close",), "macd": ("close",), "bollinger": ("close",),
    "roc": ("close",), "atr": _RANGE, "stochastic": _RANGE, "williams_r": _RANGE, "cci": _RANGE, "adx": _RANGE,
    "obv": ("close", "volume"),
}  # fmt: skip
CLOSE_INDICATORS = tuple(kind for kind in INDICATOR_TYPES if INDICATOR_INPUTS[kind] == ("close",))


class FuzzySet(_Strict):
    """One membership function over a feature's values.

    triangular: [a, b, c]; trapezoidal: [a, b, c, d]; gaussian: [mean, sigma].
    """

    type: Literal["triangular", "trapezoidal", "gaussian"]
    parameters: list[float]

    @model_validator(mode="after")
    def _check_parameters(self) -> FuzzySet:
        expected = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}[self.type]
        if len(self.parameters) != expected:
            raise ValueError(f"{self.type} needs {expected} parameters, got {len(self.parameters)}")
        if self.type == "gaussian":
            if self.parameters[1] <= 0:
                raise ValueError("gaussian sigma must be > 0")
        elif list(self.parameters) != sorted(self.parameters):
            raise ValueError("parameters must be in ascending order")
        return self


class Model(_Strict):
    type: Literal["mlp"] = "mlp"
    hidden_layers: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default=[32, 16], min_length=1, max_length=6)
    activation: Literal["relu", "tanh", "gelu", "leaky_relu"] = "relu"
    dropout: float = Field(default=0.2, ge=0, lt=0.9)


class Labels(_Strict):
    """ZigZag labels: BUY when price rises by `zigzag_threshold` within `lookahead` bars, SELL if it falls."""

    zigzag_threshold: float = Field(default=0.01, gt=0, le=0.5)
    lookahead: int = Field(default=20, ge=1, le=500)
    # False: no HOLD class; a window that touches neither threshold is labelled by its last close (labels.py).
    hold: bool = True


class Split(_Strict):
    train: float = Field(default=0.7, gt=0, lt=1)
    validation: float = Field(default=0.15, gt=0, lt=1)
    test: float = Field(default=0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-6:
            raise ValueError("train + validation + test must equal 1")
        return self


class Training(_Strict):
    epochs: int = Field(default=30, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=8192)
    learning_rate: float = Field(default=0.001, gt=0, le=1)
    early_stopping_patience: int = Field(default=8, ge=0, le=200)
    weight_decay: float = Field(default=0.0, ge=0, le=1)


class Backtest(_Strict):
    confidence_threshold: float = Field(default=0.4, ge=0, le=1)
    commission: float = Field(default=0.0002, ge=0, le=0.05)
    slippage: float = Field(default=0.0001, ge=0, le=0.05)
    # Bars a position is held at least before it may change (1: any bar). A trend edge pays over weeks, and a
    # call reversed within days is mostly a whipsaw that costs twice (issue 14).
    min_hold: int = Field(
        default=1, ge=1, le=250, description="Bars a position is kept at least before it may change (1: any bar)."
    )


class Portfolio(_Strict):
    """How a universe strategy trades its symbols (issue 24; `engine.portfolio`).

    timing: each symbol trades its own signal, the portfolio is their equal-weight mean. rank: each bar, long the
    top `fraction` of symbols by predicted up-probability and short the bottom `fraction`, equal-weight and
    dollar-neutral.
    """

    mode: Literal["timing", "rank"] = "timing"
    fraction: float = Field(default=0.2, gt=0, le=0.5)


class Evaluation(_Strict):
    """Walk-forward evaluation; `folds` unset takes KTRDR_WALK_FORWARD_FOLDS (default 4)."""

    folds: int | None = Field(default=None, ge=2, le=10)


class Strategy(_Strict):
    """A complete strategy document, on one series (`symbol:`) or on a universe (`universe:`, issue 24).

    A universe strategy's `symbol` is its universe's name (set on validation, never written out): everything keyed
    by a strategy's series (history, trials, evidence) then treats the universe as one series, as issue 24 asks.
    """

    name: str = Field(pattern=NAME_PATTERN.pattern)
    description: str = Field(default="", max_length=2000)
    hypothesis: str = Field(default="", max_length=2000)
    symbol: str = Field(pattern=r"^[A-Za-z0-9_.^-]{1,32}$")
    universe: str | None = Field(default=None, pattern=UNIVERSE_PATTERN)
    timeframe: str
    indicators: list[Indicator] = Field(min_length=1, max_length=20)
    fuzzy_sets: dict[str, dict[str, FuzzySet]] = Field(min_length=1)
    model: Model = Model()
    labels: Labels = Labels()
    split: Split = Split()
    training: Training = Training()
    backtest: Backtest = Backtest()
    evaluation: Evaluation = Evaluation()
    # None on a single series (and left out of its YAML); a universe strategy without it trades `timing`.
    portfolio: Portfolio | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_series(cls, data: Any) -> Any:
        """Exactly one of `symbol` and `universe`; a universe's name stands in as the symbol."""
        if not isinstance(data, dict) or "universe" not in data:
            return data
        if data["universe"] is None:  # `universe: null` is no universe
            return {key: value for key, value in data.items() if key != "universe"}
        if "symbol" in data:
            raise ValueError("give either symbol or universe, not both")
        return {**data, "symbol": data["universe"]}

    @model_serializer(mode="wrap")
    def _drop_stand_in(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A universe strategy is written with `universe:` only, so that it reads back unchanged."""
        data = handler(self)
        if self.universe is not None and isinstance(data, dict):
            data.pop("symbol", None)
        return data

    @field_validator("timeframe")
    @classmethod
    def _check_timeframe(cls, value: str) -> str:
        if value not in TIMEFRAMES:
            raise ValueError(f"must be one of {', '.join(TIMEFRAMES)}")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Strategy:
        if self.portfolio is not None and self.universe is None:
            raise ValueError("portfolio applies to a universe strategy only (universe: NAME)")
        ids = [ind.feature_id for ind in self.indicators]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate indicator names: {', '.join(duplicates)}")
        unknown = sorted(set(self.fuzzy_sets) - set(ids))
        if unknown:
            names, known = ", ".join(unknown), ", ".join(ids)
            raise ValueError(f"fuzzy_sets refer to unknown indicators: {names} (known: {known})")
        for feature, sets in self.fuzzy_sets.items():
            if not sets:
                raise ValueError(f"fuzzy_sets.{feature}: needs at least one set")
            for set_name in sets:
                if not NAME_PATTERN.match(set_name):
                    pattern = NAME_PATTERN.pattern
                    raise ValueError(f"fuzzy_sets.{feature}: set name {set_name!r} must match {pattern}")
        return self


# pydantic's wording -> the terse form users read in one line (`period: must be >= 2`).
_BOUND_PHRASES = {
    "Input should be greater than or equal to": "must be >=",
    "Input should be less than or equal to": "must be <=",
    "Input should be greater than": "must be >",
    "Input should be less than": "must be <",
    "String should match pattern": "must match",
}


def _message(error: Any) -> str:
    """The error's message, with pydantic's wording replaced where a user needs more (or less)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    known = ", ".join(INDICATOR_TYPES)
    if kind == "union_tag_invalid":
        return f"unknown indicator type {ctx.get('tag')!r} (known: {known})"
    if kind == "union_tag_not_found":
        return f"missing indicator type (known: {known})"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} must match {ctx.get('pattern')}"
    if kind == "missing" and tuple(error["loc"]) == ("symbol",):
        return "required (or universe: NAME instead)"
    simple = {"extra_forbidden": "unknown field", "missing": "required"}
    return simple.get(kind, error["msg"].removeprefix("Value error, "))


def _format_error(error: Any) -> str:
    loc = ""
    for part in error["loc"]:
        if isinstance(part, int):
            loc += f"[{part}]"
        elif part in INDICATOR_TYPES and loc.endswith("]"):
            continue  # pydantic inserts the union tag into the path; users never wrote it
        else:
            loc += f".{part}" if loc else str(part)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc += ".type"
    message = _message(error)
    for verbose, terse in _BOUND_PHRASES.items():
        if message.startswith(verbose):
            message = terse + message[len(verbose) :]
            break
    return f"{loc}: {message}" if loc else message


def close_only_problems(strategy: Strategy) -> list[str]:
    """One message per indicator that reads more than the close, which a close-only series does not have."""
    series = f"{strategy.symbol.upper()} {strategy.timeframe}"
    problems = []
    for i, indicator in enumerate(strategy.indicators):
        missing = [column for column in INDICATOR_INPUTS[indicator.type] if column != "close"]
        if missing:
            needs = " and ".join(missing)
            problems.append(f"indicators[{i}]: {indicator.type} needs {needs}, and {series} is close-only")
    return problems


def check_close_only(strategy: Strategy) -> None:
    """Refuse a strategy whose indicators need more than closes, for a close-only series.

    Raises:
        StrategyValidationError: one message per such indicator, naming it and what it needs.
    """
    problems = close_only_problems(strategy)
    if problems:
        raise StrategyValidationError(problems)


def parse_strategy(
    document: dict[str, Any],
    available: Iterable[tuple[str, str]] | None = None,
    close_only: Iterable[tuple[str, str]] = (),
    *,
    universes: Iterable[tuple[str, str]] | None = None,
) -> Strategy:
    """Validate a strategy mapping.

    Args:
        document: the parsed YAML mapping.
        available: (symbol, timeframe) pairs that have data; when given, a single-series strategy must use one.
        close_only: (symbol, timeframe) pairs whose series are close-only (`engine.data.close_only_pairs`); a
            strategy on one of them may use close-based indicators only (`CLOSE_INDICATORS`). A universe is named
            here by its own name when one of its symbols is close-only.
        universes: (universe, timeframe) pairs; when given, a universe strategy must use one of them (unchecked
            otherwise: loading the universe's bars refuses an unknown one).

    Raises:
        StrategyValidationError: one precise message per problem, e.g. `indicators[2].period: must be >= 2`.
    """
    if not isinstance(document, dict):
        raise StrategyValidationError(["strategy must be a YAML mapping"])
    try:
        strategy = Strategy.model_validate(document)
    except ValidationError as exc:
        raise StrategyValidationError([_format_error(e) for e in exc.errors()]) from None
    field, known = ("universe", universes) if strategy.universe is not None else ("symbol", available)
    if known is not None:
        _check_known(strategy, field, set(known))
    if (strategy.symbol.upper(), strategy.timeframe) in {(s.upper(), t) for s, t in close_only}:
        check_close_only(strategy)
    return strategy


def _check_known(strategy: Strategy, field: str, pairs: set[tuple[str, str]]) -> None:
    # Stored symbols and universes are upper case (engine.data, engine.universe); a strategy may spell them either way.
    if (strategy.symbol.upper(), strategy.timeframe) not in {(s.upper(), t) for s, t in pairs}:
        offered = ", ".join(f"{s} {t}" for s, t in sorted(pairs)) or "none"
        wanted = f"{strategy.symbol} {strategy.timeframe}"
        raise StrategyValidationError([f"{field}/timeframe: no data for {wanted} (available: {offered})"])


def load_strategy_text(
    text: str, available: Iterable[tuple[str, str]] | None = None, close_only: Iterable[tuple[str, str]] = ()
) -> Strategy:
    """Parse YAML text with `yaml.safe_load` only, then validate it (`parse_strategy`)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise StrategyValidationError([f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    return parse_strategy(document, available, close_only)


def load_strategy(
    path: Path, available: Iterable[tuple[str, str]] | None = None, close_only: Iterable[tuple[str, str]] = ()
) -> Strategy:
    """Read and validate a strategy file (`parse_strategy`)."""
    return load_strategy_text(Path(path).read_text(encoding="utf-8"), available, close_only)


def dump_strategy(strategy: Strategy) -> str:
    """The strategy as YAML text (what is saved under the strategies folder)."""
    return yaml.safe_dump(strategy.model_dump(mode="json", exclude_none=True), sort_keys=False)


def strategy_json_schema() -> dict[str, Any]:
    """The JSON schema of a strategy, for the designer's structured output."""
    return Strategy.model_json_schema()


def save_strategy(strategy: Strategy, folder: Path, *, stamp: str) -> Path:
    """Write `<name>_<stamp>.yaml` into `folder` atomically; never overwrite (a suffix is added instead).

    Args:
        strategy: a validated strategy (its name already matches NAME_PATTERN, so it cannot escape `folder`).
        folder: the strategies folder.
        stamp: a timestamp such as `20261127_061500`.
    """
    folder = Path(folder)
    text = dump_strategy(strategy)
    for attempt in range(1000):
        suffix = f"_{attempt}" if attempt else ""
        try:
            return atomic_write(folder / f"{strategy.name}_{stamp}{suffix}.yaml", text, overwrite=False)
        except FileExistsError:
            continue  # taken (by an earlier save or a concurrent one): try the next suffix
    raise FileExistsError(f"no free file name for strategy {strategy.name} in {folder}")
