"""What every trial of a study shares (model, data, schedule, tracking), as opposed to what the search varies.

Each section of the study config that trials read is one frozen settings object here (TrainSettings below; the
embedded model's EmbeddedSpec, the SAE's SAEConfig, RobustnessSettings and MmieEvalConfig in trainables.settings,
DegenerateRule beside its code), whose defaults are the only ones: study/config.py validates each section and takes
its defaults from these classes, and the driver passes each validated section whole. Nothing here imports torch
(the embedded model is built, and loads torch, only when a trial asks for its path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainables.data import DataPaths
from trainables.metrics.degenerate import DegenerateRule
from trainables.model.decoder_layers import ModelSize
from trainables.model.shapes import ensure_shape, is_shape
from trainables.settings import EMBEDDED_ROLES, EmbeddedSpec, MmieEvalConfig, RobustnessSettings, SAEConfig


def objective_scalar(metrics: dict, weights: tuple[tuple[str, float], ...]) -> float:
    """ASHA's single objective: the weighted sum of the study's objectives (NaN when one is missing), as every result
    carries it when the setup's `objective_weights` are set (the trainable; the replay benchmark alike)."""
    return sum(w * metrics.get(m, math.nan) for m, w in weights)

@dataclass(frozen=True)
class TrainSettings:
    """mmie.py's training setup by default: batch 16, max_len 256, 10% warm-up then cosine, clip 1.0. A step is one
    forget update plus the retain updates that go with it (mmie.py's --lora_steps counts both: 2 per step)."""

    steps: int = 100
    batch_size: int = 16
    max_len: int = 256
    lr_schedule: str = "warmup_cosine"  # or "constant"
    warmup_ratio: float = 0.1
    eval_every: int = 25
    checkpoint_every: int = 25
    es_prompts: int = 32  # extraction-strength prompts at evaluation checkpoints
    final_es_prompts: int = 96  # at the end of a trial
    max_grad_norm: float = 1.0  # 0: no clipping
    max_adapter_norm: float = 1e3  # an adapter whose norm passes this has diverged
    seed: int = 0
    # "masked": each batch padded to its longest line, padding masked out of every loss. "mmie": mmie.py's, each
    # set tokenised once (every row padded, on the left, to the longest line of the set; a long line keeps its
    # end) and pads counted in the losses (trainables.model.batching.whole_set_rows).
    padding: str = "masked"


PADDINGS = ("masked", "mmie")


@dataclass(frozen=True)
class TrialSetup:
    # Model: "embedded" (built here from `embedded`), "shape:NAME" (a real architecture's shape with random weights,
    # trainables/model/shapes.py), a hub name or a local path.
    model: str = "embedded"
    embedded: EmbeddedSpec = field(default_factory=EmbeddedSpec)
    # shape:NAME only: its tokenizer (a folder or tokenizer.json; the embedded build's if empty) and weight seed.
    shape_tokenizer: str = ""
    shape_seed: int = 0
    # Depth and width of the model, read by the driver from its config (layer knobs search its layers).
    model_shape: ModelSize | None = None
    trust_remote_code: bool = False
    dtype: str = "float32"
    # "int8": loaded 8-bit through bitsandbytes, as mmie.py loads a model on CUDA by default (CUDA only).
    quantization: str = "none"
    device: str = "cpu"
    # Data: None means the embedded default's generated corpus, forgetting `embedded_forget`.
    data: DataPaths | None = None
    embedded_forget: str = EMBEDDED_ROLES["forget"]
    embedded_retain: str = EMBEDDED_ROLES["retain"]
    # Languages (ISO 639-1) per data set name, and the forget set's script; the driver finds them from the data.
    languages: tuple[tuple[str, str], ...] = ()
    forget_script: str = ""
    # Schedule: mmie.py's by default (the study config's train: section).
    train: TrainSettings = field(default_factory=TrainSettings)
    # Not study settings: batches and lengths of the per-checkpoint measurements, and lines held out per set.
    eval_batch: int = 8
    eval_max_len: int = 32
    max_new_tokens: int = 20
    heldout: int = 128
    # Collateral utilities every step (not only every eval_every), when one of them is a study objective.
    collateral_every_step: bool = False
    # (objective, weight) pairs: when set, every result carries their weighted sum as `objective_scalar` (ASHA's).
    objective_weights: tuple[tuple[str, float], ...] = ()
    # SAE gates: the SAE trained (once, cached) for a gate, or a pretrained one in SAELens's folder format.
    sae: SAEConfig = field(default_factory=SAEConfig)
    sae_pretrained: str = ""
    # The relearning attack, activation perturbation and int8 checks (trainables.metrics.robustness).
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)
    # mmie.py's measurements and acceptance gates (trainables.metrics.mmie).
    mmie_eval: MmieEvalConfig = field(default_factory=MmieEvalConfig)
    # When a trial's forget continuations count as degenerate (trainables.metrics.degenerate), and whether romanised
    # forget-language text counts as the forget language in extraction strength (mmie.py's --es_romanized).
    degenerate: DegenerateRule = field(default_factory=DegenerateRule)
    es_romanized: bool = False
    cpus_per_trial: int = 1
    # Tracking (absolute URI; trials run in their own working directories).
    tracking_uri: str = ""
    experiment_id: str = ""
    parent_run_id: str = ""
    # Fault injection for tests: the worker process exits hard at this step unless restored from a checkpoint.
    crash_at_step: int | None = None

    def model_path(self) -> str:
        from trainables.embedded import ensure_embedded

        if self.model == "embedded":
            return str(ensure_embedded(self.embedded).model_dir)
        if is_shape(self.model):
            tokenizer = self.shape_tokenizer or str(ensure_embedded(self.embedded).model_dir)
            return str(ensure_shape(self.model, tokenizer, self.shape_seed))
        return self.model

    def data_paths(self) -> DataPaths:
        if self.data is not None:
            return self.data
        from trainables.embedded import ensure_embedded

        return ensure_embedded(self.embedded).data_paths(self.embedded_forget, self.embedded_retain)

    def language_of(self, set_name: str) -> str | None:
        return dict(self.languages).get(set_name)
