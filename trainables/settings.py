"""The settings objects of the study config's trainables-side sections: the embedded model's spec, the SAE's
settings, mmie.py's measurements and gates, the robustness checks. Frozen dataclasses, each the only place its
defaults are stated (study/config.py validates a section and takes its defaults from here; the driver hands the
validated section to the trials as one of these).

They live apart from the code that uses them (trainables.embedded.builder, trainables.methods.gates.sae,
trainables.metrics.mmie, trainables.metrics.robustness, which import them from here) so that nothing here imports
torch: the command line validates a config, and reports a bad one, without loading it (tests/test_cli_imports.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

# ---- what counts as having forgotten (study.pareto's knee, trainables.metrics.attack_sweep's shares) -----------

# Below this forget_efficacy a trial forgot next to nothing: it is never the knee, however well it keeps utility, and
# a share of its forgetting brought back says nothing (0.01 -> -0.02 would be "300% back"). 0.1 is a tenth of the
# forget-language token mass gone.
MIN_FORGOTTEN = 0.1


# ---- the embedded model (trainables.embedded.builder) ----------------------------------------------------------

# The generated corpus's languages and their roles in the default study (forget Hindi, retain English).
EMBEDDED_ROLES = {"forget": "hi", "retain": "en", "mixed": "hi_en", "xlang": ("ur", "pa", "bn")}
# Part of the embedded model's cache key: raised when the builder's output changes for the same spec.
EMBEDDED_FORMAT_VERSION = 2


@dataclass(frozen=True)
class EmbeddedSpec:
    """Everything that determines the embedded model's bytes; its hash is the cache key."""

    seed: int = 0
    lines_per_language: int = 3000
    # Pretrain on these JSONL files instead of the generated corpus (a smoke test on a user's own data).
    data_files: tuple[str, ...] = ()
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 512
    pretrain_steps: int = 600  # two thirds as many leave Urdu and Bengali script fidelity behind (the build report's)
    # 16, not 32: the same held-out perplexity and script fidelity in under half the pretraining time (docs/benchmarks.md,
    # "The embedded model's batch").
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    heldout: int = 128

    def key(self) -> str:
        payload = asdict(self) | {"format": EMBEDDED_FORMAT_VERSION}
        payload["data_files"] = [(p, file_digest(p)) for p in self.data_files]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (cache keys: the embedded model's data files, the base measurements')."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---- the SAE a gate reads (trainables.methods.gates.sae) -------------------------------------------------------


@dataclass(frozen=True)
class SAEConfig:
    """What determines a trained SAE besides the model, layer and data; part of the cache key."""

    d_sae: int | None = None  # None: 8 × d_model
    k: int = 32  # mean L0 (BatchTopK)
    steps: int = 2000
    lr: float = 1e-3
    batch_tokens: int = 1024
    seed: int = 0
    max_len: int = 64
    heldout_fraction: float = 0.1  # lines held out of training, to measure FVE and L0 on


# ---- mmie.py's measurements and acceptance gates (trainables.metrics.mmie) -------------------------------------


@dataclass(frozen=True)
class MmieEvalConfig:
    """How many lines the mmie.py measurements use, which LID voters the command turns on, and the gates' ratios."""

    enabled: bool = True
    items: int = 8  # forget prompts at evaluation checkpoints (not a figure mmie.py prints)
    # At the end of a trial and for the base model: None is mmie.py's counts (ES_ITEMS); a number caps each set.
    final_items: int | None = None
    # ES sets at evaluation checkpoints: "forget" (es_forget only: generation is most of the cost) or "all"; the
    # end of a trial and the base model always measure every set.
    checkpoint_sets: str = "forget"
    max_new_tokens: int = 64
    # Lines for perplexity, token KL and membership inference; None: mmie.py's 200, 120 and 120.
    teacher_forced_items: int | None = None
    min_k: float = 0.2  # Min-K% Prob: the share of lowest-probability tokens averaged
    # mmie.py's flags that add LID voters (trainables.language.lid_ensemble): CLD3, and fastText (which also needs
    # FASTTEXT_LID_PATH). The exporter emits them as set here.
    use_xlmr: bool = False
    use_fasttext: bool = False
    gate_es_forget_ratio: float = 0.5
    gate_es_mixed_ratio: float = 0.7
    gate_ppl_ratio: float = 1.10

    @property
    def items_exact(self) -> bool:
        return self.final_items is None and self.teacher_forced_items is None


# ---- the robustness checks (trainables.metrics.robustness) -----------------------------------------------------


@dataclass(frozen=True)
class RobustnessSettings:
    """What a study measures of its trials' robustness (the study config's `robustness:` section)."""

    relearn: bool = True
    relearn_steps: int = 50
    relearn_lr: float = 5e-5
    relearn_params: str = "adapter"  # or "all": the attacker trains every parameter
    relearn_batch_size: int = 8
    relearn_eval_every: int = 10  # forget_efficacy along the way
    relearn_es_prompts: int = 32  # extraction strength at the attack's end
    # Training steps (besides the last) after which the attack also runs: the scheduler's rungs when the attack's
    # result is a study objective, every eval checkpoint when the config asks.
    relearn_at_steps: tuple[int, ...] = ()
    # relearn_forget_efficacy is a study objective: Ray wants it in every result, so between attacks the trial
    # reports it to Ray as NaN (never to MLflow); schedulers read it at their rungs and Optuna at the end, where
    # the attack ran.
    relearn_is_objective: bool = False
    # The oracle's share of its forgetting that the attack brings back (set by the driver when the study has one).
    oracle_share_back: float | None = None
    actpert_audit: bool = False
    actpert_amp: float = 0.1
    int8_check: bool = False
