"""The random designer: the offline designer's space, every parameter drawn uniformly (Optuna's RandomSampler).

The baseline any learner has to beat (`KTRDR_DESIGNER=random`, `--designer random`); its trials go to the same
studies, so the optimiser learns from them too.
"""

from __future__ import annotations

from agent_pipeline.llm.designers.offline import OfflineDesigner


class RandomDesigner(OfflineDesigner):
    """Same space, same series choice, same documents as the offline designer; uniform draws."""

    name = "random"
    sampler = "random"
