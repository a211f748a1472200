"""The learning-rate schedule, applied per update (forget and retain updates count alike, as in mmie.py).

`warmup_cosine` is mmie.py's: linear warm-up over the first `warmup_ratio` of the updates, then cosine decay to 0.
mmie.py's warm-up starts at lr 0 (its first update does nothing); here update u of the warm-up runs at
lr * (u + 1) / w, so the first update already moves the adapter. `constant` keeps the optimisers' learning rates.
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
        return (update + 1) / warmup
    decay = max(total_updates - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (update - warmup) / decay))
