"""Any JSON or YAML document becomes a `Strategy` or a `StrategyValidationError`, never another exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_pipeline.engine.strategy import Strategy, load_strategy_text, parse_strategy
from agent_pipeline.errors import StrategyValidationError

EXAMPLE = yaml.safe_load((Path(__file__).parents[2] / "examples" / "eurusd_rsi_atr.yaml").read_text())
# JSON values, nested a few levels deep (what a designer's reply or an API body can hold).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a parsed document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def _outcome(load: Any, document: Any) -> Strategy | StrategyValidationError:
    try:
        strategy = load(document)
    except StrategyValidationError as error:
        assert error.errors and all(isinstance(line, str) and line for line in error.errors)
        return error
    assert isinstance(strategy, Strategy)
    return strategy


@FUZZ
@given(JSON)
def test_any_json_value_is_a_strategy_or_a_validation_error(document: Any) -> None:
    _outcome(parse_strategy, document)


@FUZZ
@given(st.data())
def test_a_valid_strategy_with_one_value_replaced_is_a_strategy_or_a_validation_error(data: st.DataObject) -> None:
    # Mutations of a real strategy reach the deep validators (fuzzy sets, indicator periods, labels ...)
    path = data.draw(st.sampled_from(_paths(EXAMPLE)))
    mutated = _replace(EXAMPLE, path, data.draw(JSON))
    _outcome(parse_strategy, mutated)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_strategy_or_a_validation_error(text: str) -> None:
    _outcome(load_strategy_text, text)


@FUZZ
@given(JSON)
def test_any_yaml_dump_of_a_document_is_a_strategy_or_a_validation_error(document: Any) -> None:
    _outcome(load_strategy_text, yaml.safe_dump(document))


def test_the_unmutated_example_is_a_strategy() -> None:
    assert isinstance(_outcome(parse_strategy, EXAMPLE), Strategy)
