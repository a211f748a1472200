"""Driver side of the platform: study config, search space, tracking, the Ray Tune study, and the CLI."""

__version__ = "0.1.0"

from study import moved as _moved  # noqa: E402,F401  (old module names resolve, for saved studies)
