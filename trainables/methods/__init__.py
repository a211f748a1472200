"""Unlearning methods as registered pieces: objectives, retain objectives, weightings, optimisers, the LR
schedule, adapters, and the variants that compose them (`gates/`: inference-time SAE gates)."""
