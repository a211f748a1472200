"""The learning-rate schedule, applied per update (forget and retain updates count alike, as in mmie.py).

`warmup_cosine` is mmie.py's (L1418): linear warm-up over the first w = int(warmup_ratio * updates), update u at
lr * u / w (so the first update runs at lr 0, as there), then cosine decay to 0. `constant` keeps the optimisers'
learning rates.
"""

from __future__ import annotations

import math

SCHEDULES = ("warmup_cosine", "constant")


def lr_multiplier(schedule: str, update: int, total_updates: int, warmup_ratio: float) -> float:
    """The factor on every optimiser's base learning rate for `update` (0-based) of `total_updates`."""
    if schedule == "constant":
        return 1.0
    if schedule != "warmup_cosine":
        raise ValueError(f"unknown lr schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    warmup = int(warmup_ratio * total_updates)
    if update < warmup:
        return update / warmup
    decay = max(total_updates - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (update - warmup) / decay))
