"""Integration test for training with gate (the spec's Task 3.4 gate tests, as written).

The spec's first test (`test_training_runs_after_design`) drives the whole Celery chain and lives with it.
"""

import pytest


@pytest.mark.integration
async def test_training_gate_failure_stops_cycle():
    """Training gate failure fails the entire cycle."""
    # This test requires a strategy that produces poor training results
    # We'll mock the training result for testing

    from agent_pipeline.gates import check_training_gate

    # Simulate poor training results
    poor_results = {
        "accuracy": 0.35,  # Below 45% threshold
        "final_loss": 0.9,
        "initial_loss": 0.95,
    }

    passed, reason = check_training_gate(poor_results)
    assert passed is False
    assert "accuracy_below_threshold" in reason
    assert "35%" in reason
    assert "45%" in reason


@pytest.mark.integration
async def test_training_gate_pass_continues():
    """Training gate pass allows continuation."""
    from agent_pipeline.gates import check_training_gate

    good_results = {
        "accuracy": 0.65,  # Above 45%
        "final_loss": 0.35,  # Below 0.8
        "initial_loss": 0.85,  # >20% decrease
    }

    passed, reason = check_training_gate(good_results)
    assert passed is True
    assert reason == "passed"
