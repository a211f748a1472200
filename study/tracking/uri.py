"""Where a study's MLflow runs go: one rule for `run`, `resume` and the commands that read a study back; how the
URI is shown (without credentials), and whether a tracking server answers. MLflow itself is not imported here: the
checks before a study starts run without it."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else mlflow.db in the working directory (made absolute:
    trials run in their own working directories and would each get their own database)."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def redact_uri(uri: str | None) -> str | None:
    """The URI without the user and password a URL may carry (https://user:pass@host): what is shown or written."""
    if not uri or "@" not in uri:
        return uri
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class TrackingUnreachable(RuntimeError):
    """The MLflow tracking server does not answer; raised before any trial starts."""


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when a tracking server is down: MLflow's own client would retry with
    backoff for minutes, after the study had already built its model and data."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except OSError as e:
        problem = str(getattr(e, "reason", e))
    raise TrackingUnreachable(
        f"MLflow tracking server {redact_uri(uri)} is unreachable ({problem}); start it (see docs/cluster.md) or fix "
        "--tracking-uri / MLFLOW_TRACKING_URI. No trial was started."
    )
