"""End-to-end tests drive the same real stack as the cycle integration tests (tests/stack.py)."""

from tests.stack import make_module_stack, make_stack  # noqa: F401 - fixtures, used by name
