"""Where a study's MLflow runs go: one rule for `run`, `resume` and the commands that read a study back."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory (made absolute:
    trials run in their own working directories and would each get their own database)."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
