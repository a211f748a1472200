"""Old module names, for one release: a study saved before the worker and driver moved into rooms names its
classes and functions (the trainable, the scheduler, the callbacks) by their old modules in Ray's pickled state.
Importing an old name gives the module at its new address, so `unlearn-study resume` finds them."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Old names that are packages now (trainables.metrics, study.tracking) are not aliased: nothing pickled lived there.
TRAINABLES_MOVES = {
    "trainables.registry": "trainables.methods.registry",
    "trainables.variants": "trainables.methods.variants",
    "trainables.objectives": "trainables.methods.objectives",
    "trainables.retain_objectives": "trainables.methods.retain_objectives",
    "trainables.weighting": "trainables.methods.weighting",
    "trainables.optimizers": "trainables.methods.optimizers",
    "trainables.schedule": "trainables.methods.lr_schedule",
    "trainables.adapters": "trainables.methods.adapters",
    "trainables.reft": "trainables.methods.mmie_reft",
    "trainables.loreft": "trainables.methods.loreft",
    "trainables.sine_lora": "trainables.methods.sine_lora",
    "trainables.gates": "trainables.methods.gates.sae_gates",
    "trainables.sae": "trainables.methods.gates.sae",
    "trainables.mmie_metrics": "trainables.metrics.mmie",
    "trainables.degenerate": "trainables.metrics.degenerate",
    "trainables.robustness": "trainables.metrics.robustness",
    "trainables.language_id": "trainables.language.identification",
    "trainables.lid_ensemble": "trainables.language.lid_ensemble",
    "trainables.unicode_scripts": "trainables.language.scripts",
    "trainables.vocabulary": "trainables.language.vocabulary",
    "trainables.modeling": "trainables.model.loading",
    "trainables.decoder_layers": "trainables.model.decoder_layers",
    "trainables.shapes": "trainables.model.shapes",
    "trainables.batching": "trainables.model.batching",
    "trainables.trainable": "trainables.trial.trainable",
    "trainables.trial_tracking": "trainables.trial.tracking",
    "trainables.status": "trainables.trial.status",
    "trainables.trial_setup": "trainables.trial.setup",
}


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:  # already executed under its new name
        pass


class MovedModules(importlib.abc.MetaPathFinder):
    """Finds an old module name and hands back the module now at its new address (the same object)."""

    def __init__(self, moves: dict[str, str]):
        self.moves = dict(moves)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.moves:
            return None
        return importlib.util.spec_from_loader(fullname, _Loader(self.moves[fullname]))


def install(moves: dict[str, str]) -> None:
    if not any(isinstance(f, MovedModules) and f.moves == moves for f in sys.meta_path):
        sys.meta_path.append(MovedModules(moves))


install(TRAINABLES_MOVES)
