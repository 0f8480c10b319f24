"""Settings: read from the environment, checked at start-up; errors name the setting, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.errors import ConfigurationError

GATE_ENV = {
    "TRAINING_GATE_MIN_ACCURACY": ("training_gate_min_accuracy", 0.45, "0.6"),
    "TRAINING_GATE_MAX_LOSS": ("training_gate_max_loss", 0.8, "0.5"),
    "TRAINING_GATE_MIN_LOSS_DECREASE": ("training_gate_min_loss_decrease", 0.2, "0.1"),
    "BACKTEST_GATE_MIN_WIN_RATE": ("backtest_gate_min_win_rate", 0.45, "0.55"),
    "BACKTEST_GATE_MAX_DRAWDOWN": ("backtest_gate_max_drawdown", 0.4, "0.25"),
    "BACKTEST_GATE_MIN_SHARPE": ("backtest_gate_min_sharpe", -0.5, "0.3"),
    "TRAINING_GATE_MAX_P": ("training_gate_max_p", 0.05, "0.01"),
}


def configuration_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    reset_settings()
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    return str(caught.value)


def test_defaults_put_everything_under_ktrdr_home(isolated_settings: Path) -> None:
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{isolated_settings / 'ktrdr.db'}"
    assert settings.data_dir == isolated_settings / "data"
    assert settings.strategies_dir == isolated_settings / "strategies"
    assert settings.artifacts_dir == isolated_settings / "artifacts"
    assert settings.broker_url == settings.result_backend == "redis://localhost:6379/0"
    assert settings.max_concurrent_cycles == 1


@pytest.mark.parametrize("env_name", sorted(GATE_ENV))
def test_gate_default_is_the_documented_threshold(env_name: str) -> None:
    field, default, _ = GATE_ENV[env_name]
    assert getattr(get_settings(), field) == pytest.approx(default)


@pytest.mark.parametrize("env_name", sorted(GATE_ENV))
def test_gate_threshold_is_read_from_its_upstream_env_name(monkeypatch: pytest.MonkeyPatch, env_name: str) -> None:
    field, _, value = GATE_ENV[env_name]
    monkeypatch.setenv(env_name, value)
    reset_settings()
    assert getattr(get_settings(), field) == pytest.approx(float(value))


def test_prefixed_settings_are_read_from_ktrdr_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRDR_DESIGNER", "offline")
    monkeypatch.setenv("KTRDR_MAX_CONCURRENT_CYCLES", "3")
    monkeypatch.setenv("KTRDR_BROKER_URL", "redis://example:6379/2")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@h/db")
    settings = get_settings()
    assert (settings.designer, settings.max_concurrent_cycles) == ("offline", 3)
    assert settings.broker_url == "redis://example:6379/2"
    assert settings.database_url == "postgresql+psycopg://u:p@h/db"


def test_auto_designer_is_offline_without_api_key() -> None:
    assert get_settings().effective_designer == "offline"


def test_auto_designer_is_anthropic_with_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key")
    settings = get_settings()
    assert settings.effective_designer == "anthropic"
    assert "sk-test-key" not in repr(settings)


@pytest.mark.parametrize(
    ("env_name", "value", "named"),
    [
        ("KTRDR_DESIGNER", "sneaky_designer_value", "designer"),
        ("DATABASE_URL", "mysql://user:topsecret_pw@host/db", "DATABASE_URL"),
        ("TRAINING_GATE_MIN_ACCURACY", "-0.25", "TRAINING_GATE_MIN_ACCURACY"),
        ("BACKTEST_GATE_MAX_DRAWDOWN", "-0.1", "BACKTEST_GATE_MAX_DRAWDOWN"),
        ("TRAINING_GATE_MAX_LOSS", "-1", "TRAINING_GATE_MAX_LOSS"),
        ("KTRDR_MAX_CONCURRENT_CYCLES", "-3", "max_concurrent_cycles"),
        ("KTRDR_POLL_INTERVAL", "not_a_number_value", "poll_interval"),
    ],
)
def test_bad_setting_is_one_line_naming_the_setting_not_the_value(
    monkeypatch: pytest.MonkeyPatch, env_name: str, value: str, named: str
) -> None:
    message = configuration_error(monkeypatch, env_name, value)
    assert named in message
    assert value not in message
    assert "\n" not in message


def test_settings_are_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("KTRDR_SEED", "99")
    assert get_settings() is first
    reset_settings()
    assert get_settings().seed == 99


def test_a_strategy_error_rebuilt_from_its_message_keeps_the_message_whole() -> None:
    from agent_pipeline.errors import StrategyValidationError

    original = StrategyValidationError(["indicators[0]: atr needs high and low", "labels: lookahead must be >= 1"])
    rebuilt = StrategyValidationError(str(original))  # what a result backend does with the exception's text
    assert str(rebuilt) == str(original) and rebuilt.errors == [str(original)]
