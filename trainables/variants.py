"""The named variants (presets) a study can search. Each line composes registered pieces."""

from __future__ import annotations

# Importing the piece modules registers them.
from . import adapters, objectives, optimizers, weighting  # noqa: F401
from .registry import Variant, register_variant

register_variant(Variant("ga", objective="ga", help="gradient ascent on forget, NLL on retain (gradient difference)"))
register_variant(Variant("npo", objective="npo", help="NPO on forget, NLL on retain"))
