"""The lines a study's trials trained on, found again from the study's record and written as mmie.py's input files.

mmie.py trains on every line of its --forget and --retain files, in file order before its shuffle (its
--forget_reweight and --use_curriculum pools are the first 128 and 256 lines), and measures on the heads of its
files: forget[:200], retain[:200], mixed[:150], the cross-lingual files' [:120], adversarial[:150]. A study trains
on `data.<set>.train`: its seeded split of each file, less the held-out lines (and the forget set's attack lines).
So an export writes each set's `train` list, in the study's order, as one JSONL file: line i of the file is
`data.<set>.train[i]`, and the study's `mmie/` figures are measured on the same heads (trainables.metrics.mmie).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from study.results.front import StudyRecord
from trainables.data import UTILITY_SET, DataPaths, StudyData, load_study_data, write_jsonl
from trainables.trial.setup import TrialSetup

# The folder of an export that holds the lines. A study's general utility set has no mmie.py flag: not written.
FOLDER = "data"


@dataclass(frozen=True)
class StudyInputs:
    """Where the study's model and data files are on this machine."""

    model: str  # a local folder or a hub name
    data: DataPaths
    embedded_root: Path | None = None  # the embedded default's cache folder, when the study used it


def _flag(value: str) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _study_config(record: StudyRecord):
    """The parts of the study's config that locate its model and data, rebuilt from the logged (string) params."""
    from study.config import StudyConfig

    c = record.config
    embedded = {k.removeprefix("embedded."): v for k, v in c.items() if k.startswith("embedded.")}
    if "train_on_data" in embedded:
        embedded["train_on_data"] = _flag(embedded["train_on_data"])
    data = None
    if "data.forget" in c:
        def optional(key):
            return None if c.get(key, "None") == "None" else c[key]

        data = {"forget": c["data.forget"], "retain": c["data.retain"], "mixed": optional("data.mixed"),
                "adversarial": optional("data.adversarial"), "utility_eval": optional("data.utility_eval"),
                "xlang": list(ast.literal_eval(c.get("data.xlang", "[]")))}  # logged as a Python list's str()
    return StudyConfig.model_validate({"model": c.get("model", "embedded"), "embedded": embedded, "data": data})


def study_inputs(record: StudyRecord) -> StudyInputs:
    """The study's model and data files, as its trials found them (relative data paths are read from the working
    directory, as the study resolved them). The embedded default must already be built here: its folder holds the
    model and the generated data (`unlearn-study build-default` builds it)."""
    from study.prepare import embedded_spec, resolved_data_paths
    from trainables.cache import cache_root
    from trainables.embedded import ensure_embedded

    cfg = _study_config(record)
    paths = resolved_data_paths(cfg)
    if cfg.model != "embedded" and paths is not None:
        return StudyInputs(model=cfg.model, data=paths)
    spec = embedded_spec(cfg)
    root = cache_root() / "embedded" / spec.key()
    if not (root / "report.json").is_file():
        raise ValueError(f"study {record.study!r} used the embedded default, which is not built on this machine "
                         f"({root}): run `unlearn-study build-default` (with the study's config if it set "
                         "`embedded:`) and export again")
    embedded = ensure_embedded(spec, log=lambda *a: None)
    model = str(embedded.model_dir) if cfg.model == "embedded" else cfg.model
    data = paths or embedded.data_paths(cfg.embedded.forget, cfg.embedded.retain)
    return StudyInputs(model=model, data=data, embedded_root=embedded.root)


def study_data(record: StudyRecord, inputs: StudyInputs) -> StudyData:
    """Every set split exactly as the study's trials split it (its seed, its held-out count)."""
    return load_study_data(inputs.data, seed=record.seed, heldout=TrialSetup.heldout)


def _relative(name: str) -> str:
    # Cross-lingual sets in a folder of their own, under their file's stem: mmie.py names their ES after it.
    return f"xlang/{name.removeprefix('xlang_')}.jsonl" if name.startswith("xlang_") else f"{name}.jsonl"


def written_files(data: StudyData) -> list[str]:
    """The files write_trained_lines writes for these sets, relative to its folder."""
    return [_relative(n) for n in data.sets if n != UTILITY_SET]


def write_trained_lines(data: StudyData, folder: Path) -> DataPaths:
    """Each set's training lines as a JSONL file under `folder` ({"text": ...} per line, in the study's order); the
    written files' absolute paths. Each file is written afresh and moved into place: a link there is replaced,
    never followed."""
    written: dict[str, str] = {}
    for name, s in data.sets.items():
        if name == UTILITY_SET:
            continue
        path = folder / _relative(name)
        if any(p.is_symlink() for p in (folder, path.parent)):
            raise ValueError(f"{path.parent}: is a link; give another --out")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        write_jsonl(tmp, s.train)
        os.replace(tmp, path)
        written[name] = str(path.resolve())
    return DataPaths(forget=written["forget"], retain=written["retain"], mixed=written.get("mixed"),
                     adversarial=written.get("adversarial"),
                     xlang=tuple(p for n, p in written.items() if n.startswith("xlang_")))
