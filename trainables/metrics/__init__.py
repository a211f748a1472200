"""What a trial measures: the core per-step metrics, mmie.py's own measurements and acceptance gates, the
degenerate-output rule and the relearning attack."""
