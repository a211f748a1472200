"""The curves file: learning curves recorded through the real trainable, one configuration per line.

A gzip-compressed JSON Lines file (`*.jsonl.gz`), one object per line, told apart by `kind`:

- `header` (the first line): `format` ("unlearn-replay-curves"), `version`, `spec` (the `load_config` overrides the
  recorded study ran with, on top of the defaults), `steps` (the budget: every configuration ran it unless it
  diverged), `objectives` (the study's), `seed` (batch b drew its configurations with search seed `seed + b`) and
  `batch_size`, and `model` (record.model_identity: the embedded build's cache key, or the model's name; absent
  in files recorded before it was written).
- `batch`: the provenance of one recorder batch, written with its curves: `batch`, `seed`, `commit` (and
  `dirty`: uncommitted changes in the tree), `date` (UTC), `command`, `host` (CPUs, platform), `wall_s`, `trials`.
- `curve`: one configuration: `batch`, `trial` (its Ray trial id in the recording), `config` (as the searcher
  proposed it), `status` (completed, diverged, or error), `steps` (the steps it reported, in order: 1..steps, or
  `[0]` for a gate-only variant), `wall_s` (per step: the seconds since its previous report, the first since its
  MLflow run opened, from MLflow's timestamps of the step's metrics: training, evaluation and logging, the time
  the step occupies a worker), `values` (every metric the trial logged, one list per name aligned with `steps`,
  null where the step did not log it: per-step objectives and `seconds_per_step` (training alone) at every step,
  the full evaluation's metrics at its steps) and `final` (its run's last value of every metric, with the
  `degenerate` and `diverged` flags).

Floats are written as Python's shortest exact repr, so a replayed result equals the recorded one bit for bit.
The recorder rewrites the file whole (a temporary file, then a rename) after each batch: a recorder killed mid-batch
leaves the file as it was after the last whole batch.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "unlearn-replay-curves"
VERSION = 1


@dataclass
class Curve:
    config: dict
    status: str
    steps: list[int]
    wall_s: list[float]
    values: dict[str, list[float | None]]
    final: dict[str, float]
    trial: str = ""
    batch: int = 0

    def result(self, index: int) -> dict[str, float]:
        """The metrics the trial reported at its index-th report (what it logged at that step)."""
        return {k: v[index] for k, v in self.values.items() if v[index] is not None}

    @property
    def diverged(self) -> bool:
        return bool(self.final.get("diverged"))

    @property
    def degenerate(self) -> bool:
        return bool(self.final.get("degenerate"))

    def to_json(self) -> dict:
        return {"kind": "curve", "batch": self.batch, "trial": self.trial, "config": self.config,
                "status": self.status, "steps": self.steps, "wall_s": self.wall_s, "values": self.values,
                "final": self.final}

    @classmethod
    def from_json(cls, d: dict) -> Curve:
        return cls(config=d["config"], status=d["status"], steps=d["steps"], wall_s=d["wall_s"], values=d["values"],
                   final=d["final"], trial=d.get("trial", ""), batch=d.get("batch", 0))


@dataclass
class CurvesFile:
    header: dict
    batches: list[dict] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    @property
    def spec(self) -> dict:
        return self.header["spec"]

    def write(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        lines = [self.header]
        for batch in self.batches:
            lines.append(batch)
            lines.extend(c.to_json() for c in self.curves if c.batch == batch["batch"])
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, separators=(",", ":"), allow_nan=True) + "\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | Path) -> CurvesFile:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        if not lines or lines[0].get("kind") != "header" or lines[0].get("format") != FORMAT:
            raise ValueError(f"{path}: not a curves file (no {FORMAT!r} header on its first line)")
        if lines[0].get("version") != VERSION:
            raise ValueError(f"{path}: curves format version {lines[0].get('version')}, this code reads {VERSION}")
        return cls(header=lines[0], batches=[d for d in lines if d["kind"] == "batch"],
                   curves=[Curve.from_json(d) for d in lines if d["kind"] == "curve"])

    def nearest(self, config: dict) -> int:
        """The index of the recorded configuration nearest to `config`: the fewest knobs that differ in kind (a
        categorical value, or a knob one side lacks), then the smallest Euclidean distance over the numeric knobs,
        each scaled to its recorded range (on a log scale where its recorded values are positive and span more
        than a factor of 10); ties go to the earlier recording."""
        scales = self._scales()
        best = None
        for i, curve in enumerate(self.curves):
            mismatches, squared = 0, 0.0
            for key in config.keys() | curve.config.keys():
                a, b = config.get(key), curve.config.get(key)
                if key in scales and _number(a) and _number(b):
                    log, span = scales[key]
                    squared += ((_transform(a, log) - _transform(b, log)) / span) ** 2
                elif a != b:
                    mismatches += 1
            rank = (mismatches, squared, i)
            best = rank if best is None or rank < best else best
        if best is None:
            raise ValueError("the curves file holds no configuration")
        return best[2]

    def _scales(self) -> dict[str, tuple[bool, float]]:
        """Per numeric knob: (log scale?, its recorded span on that scale)."""
        seen: dict[str, list[float]] = {}
        for curve in self.curves:
            for key, value in curve.config.items():
                if _number(value):
                    seen.setdefault(key, []).append(float(value))
        scales = {}
        for key, values in seen.items():
            log = min(values) > 0 and max(values) > 10 * min(values)
            moved = [_transform(v, log) for v in values]
            scales[key] = (log, (max(moved) - min(moved)) or 1.0)
        return scales


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _transform(value: float, log: bool) -> float:
    return math.log(value) if log else float(value)
