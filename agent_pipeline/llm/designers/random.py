"""The random designer (`KTRDR_DESIGNER=random`): the offline designer's space drawn uniformly, the baseline."""

from __future__ import annotations

from agent_pipeline.llm.designers.offline import OfflineDesigner


class RandomDesigner(OfflineDesigner):
    """Same space, series choice and documents as the offline designer; Optuna's RandomSampler draws."""

    name = "random"
    sampler = "random"
