"""The strategy grammar: each malformed document gets one precise, one-line message."""

from __future__ import annotations

import json

import pytest
import yaml

from agent_pipeline.engine.strategy import (
    INDICATOR_TYPES,
    dump_strategy,
    load_strategy,
    load_strategy_text,
    parse_strategy,
    save_strategy,
    strategy_json_schema,
)
from agent_pipeline.errors import StrategyValidationError

AVAILABLE = {("EURUSD", "1h"), ("SP500", "1d")}


def only_error(document, available=None) -> str:
    """The single message a malformed document produces."""
    with pytest.raises(StrategyValidationError) as caught:
        if isinstance(document, str):
            load_strategy_text(document, available)
        else:
            parse_strategy(document, available)
    assert len(caught.value.errors) == 1, caught.value.errors
    message = caught.value.errors[0]
    assert "\n" not in message
    return message


def test_valid_document_round_trips_through_yaml(document):
    strategy = parse_strategy(document(), AVAILABLE)
    assert load_strategy_text(dump_strategy(strategy), AVAILABLE) == strategy


def test_not_yaml_names_the_line():
    assert only_error("name: x\nindicators: [unclosed\n").startswith("not valid YAML at line")


def test_not_a_mapping():
    assert only_error("- just\n- a list\n") == "strategy must be a YAML mapping"


def test_missing_name(document):
    nameless = document()
    del nameless["name"]
    assert only_error(nameless) == "name: required"


def test_path_like_name_is_refused(document):
    message = only_error(document(name="../../etc/passwd"))
    assert message.startswith("name: '../../etc/passwd' must match")


def test_unknown_indicator_type_lists_known_types(document):
    document = document(indicators=[{"type": "rsi"}, {"type": "supertrend"}])
    message = only_error(document)
    assert message.startswith("indicators[1].type: unknown indicator type 'supertrend' (known: rsi, sma,")
    assert all(kind in message for kind in INDICATOR_TYPES)


def test_missing_indicator_type_lists_known_types(document):
    message = only_error(document(indicators=[{"period": 3}]))
    assert message.startswith("indicators[0].type: missing indicator type (known: rsi")


def test_out_of_range_period_names_the_indicator(document):
    document = document(indicators=[{"type": "rsi"}, {"type": "macd"}, {"type": "bollinger", "period": 1}])
    assert only_error(document) == "indicators[2].period: must be >= 2"


def test_fuzzy_set_on_unknown_indicator(document):
    fuzzy_sets = {"ema_9": {"low": {"type": "gaussian", "parameters": [0, 1]}}}
    message = only_error(document(fuzzy_sets=fuzzy_sets))
    assert message == "fuzzy_sets refer to unknown indicators: ema_9 (known: rsi_14, macd, bollinger_20)"


def test_wrong_parameter_count(document):
    fuzzy_sets = {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 30]}}}
    assert only_error(document(fuzzy_sets=fuzzy_sets)) == (
        "fuzzy_sets.rsi_14.low: triangular needs 3 parameters, got 2"
    )


def test_split_must_sum_to_one(document):
    document = document(split={"train": 0.6, "validation": 0.2, "test": 0.1})
    assert only_error(document) == "split: train + validation + test must equal 1"


def test_symbol_without_data_lists_what_is_available(document):
    message = only_error(document(symbol="GBPUSD"), AVAILABLE)
    assert message == "symbol/timeframe: no data for GBPUSD 1h (available: EURUSD 1h, SP500 1d)"


def test_timeframe_without_data_is_refused(document):
    assert "no data for EURUSD 1d" in only_error(document(timeframe="1d"), AVAILABLE)


def test_symbol_case_does_not_matter_for_availability(document):
    assert parse_strategy(document(symbol="eurusd"), AVAILABLE).symbol == "eurusd"


def test_unknown_field_is_refused(document):
    assert only_error(document(leverage=10)) == "leverage: unknown field"
    document = document(indicators=[{"type": "rsi", "lenght": 5}])
    assert only_error(document) == "indicators[0].lenght: unknown field"


def test_python_tags_are_refused_by_safe_load(document):
    text = yaml.safe_dump(document()) + "payload: !!python/object/apply:os.system ['echo pwned']\n"
    message = only_error(text)
    assert message.startswith("not valid YAML")
    assert "python/object" in message


def test_json_schema_is_json_serialisable():
    schema = strategy_json_schema()
    assert "indicators" in json.loads(json.dumps(schema))["properties"]


def test_saved_strategy_reloads_and_never_overwrites(tmp_path, document):
    strategy = parse_strategy(document())
    first = save_strategy(strategy, tmp_path, stamp="20260101_000000")
    second = save_strategy(strategy, tmp_path, stamp="20260101_000000")
    assert first != second and first.parent == second.parent == tmp_path
    assert load_strategy(first) == strategy
