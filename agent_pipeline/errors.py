"""The one exception hierarchy of the pipeline."""

from __future__ import annotations

from typing import Any


class KtrdrError(Exception):
    """Raised for any expected failure of the pipeline; the root of the hierarchy."""


class ConfigurationError(KtrdrError):
    """Raised when a setting is missing, malformed or unsafe."""


class OperationNotFoundError(KtrdrError):
    """Raised when an operation id does not exist."""


class CalibrationNotFoundError(KtrdrError):
    """Raised when no calibration run has been saved yet."""


class InvalidTransitionError(KtrdrError):
    """Raised when an operation is asked to move to a status its current status does not allow."""


class DatabaseUnavailableError(KtrdrError):
    """Raised when the operations database cannot be reached."""


class CapacityError(KtrdrError):
    """Raised when a trigger would exceed max_concurrent_cycles."""

    reason = "active_cycle_exists"


class BudgetExhaustedError(KtrdrError):
    """Raised when today's LLM spend has reached the daily budget."""

    reason = "budget_exhausted"


class BrokerUnavailableError(KtrdrError):
    """Raised when the Celery broker cannot be reached to start a cycle."""


class InvalidOptionError(KtrdrError):
    """Raised when a trigger option cannot be honoured (unknown designer, Claude without an API key)."""


class StoreError(KtrdrError):
    """Raised when the artifact or data store cannot be reached, or refuses a read or a write."""


class ArtifactNotFoundError(StoreError):
    """Raised when an object is missing from the artifact store; the message names its URL."""


class DataError(KtrdrError):
    """Raised when market data is missing, unreadable or fails validation."""


class StrategyValidationError(KtrdrError):
    """Raised when a strategy document violates the grammar; carries one message per problem."""

    def __init__(self, errors: list[str] | str) -> None:
        # A str is this error rebuilt from its message (Celery's result backend keeps exceptions as their text):
        # taken whole, never joined character by character.
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


class DesignError(KtrdrError):
    """Raised when the designer cannot produce a valid strategy within its repair budget."""


class AssessmentError(KtrdrError):
    """Raised when the assessor cannot produce an assessment."""


class LLMError(KtrdrError):
    """Raised when the LLM endpoint fails after the SDK's retries."""


class TrainingError(KtrdrError):
    """Raised when training fails (bad data, diverging loss, lost worker)."""


class BacktestError(KtrdrError):
    """Raised when a backtest cannot run."""


class GateFailedError(KtrdrError):
    """Raised by a gate task to break the chain; the message is the cycle's error_message (the spec's text), and
    `verdict` the gate's decision as data (`gates.Verdict`), which the cycle's row also records."""

    def __init__(self, message: str, verdict: Any = None) -> None:
        super().__init__(message)
        self.verdict = verdict


class PhaseError(KtrdrError):
    """Raised by a phase task with a message prefixed by its phase (`Training failed: ...`)."""


# Control flow, kept apart from failures.
class CancelledError(KtrdrError):
    """Raised inside long work (training epochs) when its operation was cancelled."""


class CsrfRefusedError(KtrdrError):
    """Raised when a dashboard action's form lacks the CSRF token of the session cookie sent with it."""


class PaperAccountNotFoundError(KtrdrError):
    """Raised when a paper account id does not exist."""


class PaperRefusedError(KtrdrError):
    """Raised when a paper account cannot be opened for a cycle: not a discovery (without --force), not completed,
    no final model or backtest, or a strategy paper trading does not take."""
