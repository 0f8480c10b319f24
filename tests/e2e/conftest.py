"""End-to-end tests drive the same real stack as the cycle integration tests."""

from tests.integration.cycle.conftest import make_module_stack, make_stack  # noqa: F401 - re-exported fixtures
