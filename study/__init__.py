"""Driver side of the platform: study config, search space, tracking, the Ray Tune study, and the CLI."""

__version__ = "0.1.0"
