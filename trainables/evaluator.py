"""What a run is measured by: the base model's figures, fixed held-out batches, the forget-language tokens, language
ID and the gate's evaluation passes.

The Unlearner trains and asks its Evaluator for every metric; the robustness checks (trainables.metrics.robustness)
and the retain-only oracle (study.oracle) use the same public methods on a model that trains nothing: an Evaluator
measures whatever model it is given against the baseline it holds, so the oracle's forget_efficacy is against the
study model's forget-language mass (`with_model`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

import torch

from trainables.data import DataPaths, StudyData, load_study_data, prompt_prefix
from trainables.language.identification import LanguageIdentifier, detect_language
from trainables.language.scripts import dominant_script
from trainables.language.vocabulary import forget_token_mask
from trainables.methods.gates.sae_gates import attach_gate
from trainables.metrics.core import (
    capped_utility,
    continuation_nll,
    distinct_share,
    extraction_strength,
    forget_token_mass,
    geometric_mean,
    next_token_entropy,
    parameter_norm,
    perplexity,
    perplexity_from,
    ratio_utility,
    sample_continuations,
    token_nll,
)
from trainables.model.batching import encode, to_device
from trainables.model.loading import load_tokenizer

if TYPE_CHECKING:
    from trainables.trial.setup import TrialSetup

T = TypeVar("T")

# Lines per set used to find the forget-language tokens (enough to see every token the data uses).
VOCAB_SCAN_LINES = 3000


@lru_cache(maxsize=4)
def study_data(paths: DataPaths, seed: int, heldout: int) -> StudyData:
    """The study's data, once per worker process."""
    return load_study_data(paths, seed=seed, heldout=heldout)


def _forget_mask(tok, data: StudyData, script: str, vocab: int) -> torch.Tensor:
    texts = {name: s.train[:VOCAB_SCAN_LINES] for name, s in data.sets.items()}
    return forget_token_mask(tok, vocab, texts, script)


@lru_cache(maxsize=4)
def _cached_forget_mask(model_path: str, trust: bool, paths: DataPaths, seed: int, heldout: int, script: str, vocab: int):
    """Per worker process: trials of one study share the model, the data and so the mask."""
    return _forget_mask(load_tokenizer(model_path, trust), study_data(paths, seed, heldout), script, vocab)


@lru_cache(maxsize=4)
def _language_id(codes: tuple[str, ...], romanized: str | None = None) -> LanguageIdentifier:
    return LanguageIdentifier(codes, romanized)


class NoAdapter:
    """A bare model's stand-in for an adapter: nothing to train, nothing to disable."""

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def disabled(self):
        return nullcontext()


class Evaluator:
    """Measures `model` (the adapted model; `adapter.disabled()` gives the base it started from) on the study's
    held-out lines. The baseline is measured on construction unless one is handed in; `gate` (None: none) is what
    evaluation passes run through, set by the run once it is fitted."""

    def __init__(self, setup: TrialSetup, model, tok, data: StudyData, adapter=None, *, model_path: str | None = None,
                 data_paths: DataPaths | None = None, baseline: dict[str, float] | None = None):
        self.setup = setup
        self.model = model
        self.tok = tok
        self.data = data
        self.adapter = adapter if adapter is not None else NoAdapter()
        self.gate = None
        self._setup_forget_mask(model_path, data_paths)
        self._setup_eval_batches()
        self._setup_languages()
        self.baseline = dict(baseline) if baseline is not None else self.measure_baseline()

    def with_model(self, model, adapter=None) -> Evaluator:
        """The same measurements (batches, forget tokens, languages, baseline, gate) of another model: the oracle
        against the study model's baseline, an int8 copy of the trial."""
        other = copy.copy(self)
        other.model = model
        other.adapter = adapter if adapter is not None else NoAdapter()
        other.baseline = dict(self.baseline)
        return other

    # ---- set-up ---------------------------------------------------------------------------------------------

    def _setup_forget_mask(self, model_path: str | None, data_paths: DataPaths | None) -> None:
        """Which vocabulary tokens belong to the forget language's script (what token_mass sums over)."""
        script = self.setup.forget_script or dominant_script(self.data.forget.train[:VOCAB_SCAN_LINES])[0]
        vocab = self.model.get_input_embeddings().weight.shape[0]
        if model_path is None or data_paths is None:
            mask = _forget_mask(self.tok, self.data, script, vocab)
        else:
            mask = _cached_forget_mask(model_path, self.setup.trust_remote_code, data_paths, self.setup.train.seed,
                                       self.setup.heldout, script, vocab)
        self.forget_mask = mask.to(self.model.device)

    def _setup_eval_batches(self) -> None:
        """The fixed held-out batches: one per-step forward pass over held-out forget lines, then the utility set's
        lines, then (when utility has a set of its own) held-out retain lines, so retain_ppl is always the retain
        set's; and one batch per collateral set."""
        n = self.setup.eval_batch
        self.eval_slices = {}
        lines: list[str] = []
        for name, s in (("forget", self.data.forget), ("utility", self.data.utility), ("retain", self.data.retain)):
            if name == "retain" and s is self.data.utility:
                continue
            self.eval_slices[name] = slice(len(lines), len(lines) + len(s.heldout[:n]))
            lines += s.heldout[:n]
        self.eval_batch = encode(self.tok, lines, self.setup.eval_max_len)
        self.collateral_batches = {
            s.name: encode(self.tok, s.heldout[:n], self.setup.eval_max_len) for s in self.data.collateral_sets()
        }

    def _setup_languages(self) -> None:
        """The forget and retain languages (the setup's, found from the data outside a study) and the language
        identifier extraction strength uses (None with fewer than two languages)."""
        languages = dict(self.setup.languages)
        if "forget" not in languages:  # outside a study (the mmie entry points): find them here
            languages = {name: detect_language(s.train or s.heldout) for name, s in self.data.sets.items()}
        self.forget_language = languages["forget"]
        self.retain_language = languages["retain"]
        codes = tuple(sorted({c for c in languages.values() if c}))
        romanized = self.forget_language if self.setup.es_romanized else None
        self.language_id = _language_id(codes, romanized) if len(codes) >= 2 else None

    # ---- passes through the gate ------------------------------------------------------------------------------

    def gated(self):
        """The gate's hooks for an evaluation pass (nothing without a gate); removed on exit."""
        return attach_gate(self.model, self.gate) if self.gate is not None else nullcontext()

    def gate_fired(self, pass_: Callable[[], T]) -> tuple[T, float]:
        """Run `pass_` through the gate; return its result and the share of its sequences the gate fired on."""
        with self.gated():
            if self.gate is None:
                return pass_(), 0.0
            self.gate.reset()
            return pass_(), self.gate.firing_rate

    def _forward(self, batch) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits

    @torch.no_grad()
    def eval_pass(self) -> dict[str, float]:
        """The per-step forward pass: forget token mass and next-token entropy, utility and retain perplexity."""
        self.model.eval()
        batch = to_device(self.eval_batch, self.model.device)
        logits = self._forward(batch)
        labels = batch["labels"]
        f, u = self.eval_slices["forget"], self.eval_slices["utility"]
        r = self.eval_slices.get("retain", u)
        return {
            "token_mass": forget_token_mass(logits[f], labels[f], self.forget_mask),
            "forget_entropy": next_token_entropy(logits[f], labels[f]),
            "utility_ppl": perplexity_from(*token_nll(logits[u], labels[u])),
            "retain_ppl": perplexity_from(*token_nll(logits[r], labels[r])),
        }

    def _collateral_ppl(self) -> dict[str, float]:
        return {name: perplexity(self.model, b) for name, b in self.collateral_batches.items()}

    # ---- the baseline ---------------------------------------------------------------------------------------

    def measure_baseline(self) -> dict[str, float]:
        """The base model's figures every metric is relative to (the adapter disabled, no gate): the per-step
        pass's, the collateral perplexities and, with a language identifier, the NLL of its own continuations."""
        with self.adapter.disabled():
            step = self.eval_pass()
            collateral = self._collateral_ppl()
            base = {k: step[k] for k in ("token_mass", "retain_ppl", "utility_ppl")}
            if self.language_id is not None:  # the fluency rule's unit: the base's NLL of its own continuations
                prompts = self.prompts(self.data.forget, self.setup.train.es_prompts)
                conts = self.continuations(prompts, seed=self.setup.train.seed * 100_003 - 1)
                base["forget_cont_nll"] = continuation_nll(self.model, self.tok, [""] * len(conts), conts)
        return base | {f"ppl_{k}": v for k, v in collateral.items()}

    # ---- the metrics ------------------------------------------------------------------------------------------

    def evaluate_step(self) -> dict[str, float]:
        """The cheap per-step metrics: forget_efficacy, utility (capped at 1; the ratio itself as utility_raw),
        next-token entropy on forget lines and the adapter's weight norm."""
        with self.gated():
            step = self.eval_pass()
        m0 = self.baseline["token_mass"]
        raw = ratio_utility(self.baseline.get("utility_ppl", self.baseline["retain_ppl"]), step["utility_ppl"])
        out = {
            "token_mass": step["token_mass"],
            "forget_efficacy": 1.0 - step["token_mass"] / m0 if m0 > 0 else 0.0,
            "forget_entropy": step["forget_entropy"],
            "retain_ppl": step["retain_ppl"],
            "utility": capped_utility(raw),
            "utility_raw": raw,
            "adapter_norm": parameter_norm(self.adapter.parameters()),
        }
        if "retain" in self.eval_slices:  # utility is on a general set: the retain set's own ratio beside it
            out["utility_ppl"] = step["utility_ppl"]
            out["retain_utility_raw"] = ratio_utility(self.baseline["retain_ppl"], step["retain_ppl"])
        return out

    def evaluate_collateral(self) -> dict[str, float]:
        """Utility on the mixed set and on each cross-lingual set, and their summary xlang_utility."""
        self.model.eval()
        out: dict[str, float] = {}
        xlang = []
        for name, batch in self.collateral_batches.items():
            ppl, fired = self.gate_fired(lambda b=batch: perplexity(self.model, b))
            if self.gate is not None:
                out[f"gate_fire_{name}"] = fired
            raw = ratio_utility(self.baseline[f"ppl_{name}"], ppl)
            out[f"utility_{name}"], out[f"utility_{name}_raw"] = capped_utility(raw), raw
            if name.startswith("xlang_"):
                xlang.append(raw)
        if xlang:  # the geometric mean of the capped ratios: a set that improved cannot make up for one damaged
            out["xlang_utility"] = geometric_mean([capped_utility(u) for u in xlang])
            out["xlang_utility_raw"] = geometric_mean(xlang)
        if "utility_mixed" in out:
            out["mixed_utility"] = out.pop("utility_mixed")
            out["mixed_utility_raw"] = out.pop("utility_mixed_raw")
        return out

    def evaluate_gate(self) -> dict[str, float]:
        """With a gate: its build figures and its firing rates on held-out forget and retain lines."""
        out: dict[str, float] = {}
        if self.gate is not None:
            out.update(self.gate.info)
            for s in (self.data.forget, self.data.retain):
                batch = encode(self.tok, s.heldout, self.setup.eval_max_len)
                _, out[f"gate_fire_{s.name}"] = self.gate_fired(lambda b=batch: perplexity(self.model, b))
        return out

    def evaluate_continuations(self, prompts: int, step: int) -> dict[str, float]:
        """Extraction strength on sampled continuations of `prompts` held-out prompts of the forget set and of each
        collateral set (the sampling seed from the run's seed and `step`), what the forget continuations are, and
        the degenerate flag; with a gate, its firing rate on each set's prompts. Nothing without language ID."""
        out: dict[str, float] = {}
        if self.language_id is None:
            return out
        for s in [self.data.forget, *self.data.collateral_sets()]:
            texts = self.prompts(s, prompts)
            seed = self.setup.train.seed * 100_003 + step
            conts, fired = self.gate_fired(lambda t=texts, k=seed: self.continuations(t, k))
            out[f"es_{s.name}"] = extraction_strength(conts, self.language_id, self.forget_language)
            if self.gate is not None:
                out[f"gate_fire_es_{s.name}"] = fired
            if s is self.data.forget:
                out.update(self.describe_continuations(conts))
        with self.gated():
            out["forget_entropy"] = self.eval_pass()["forget_entropy"]
        out["degenerate"] = float(self.setup.degenerate.is_degenerate(out))
        return out

    def forget_es(self, prompts: int, seed: int) -> float | None:
        """Extraction strength of sampled continuations of the first `prompts` held-out forget prompts, through the
        gate (None when the study has no language ID to tell languages apart)."""
        if self.language_id is None:
            return None
        self.model.eval()
        with self.gated():
            conts = self.continuations(self.prompts(self.data.forget, prompts), seed)
        return extraction_strength(conts, self.language_id, self.forget_language)

    def prompts(self, s, n: int) -> list[str]:
        return [prompt_prefix(t) for t in s.heldout[:n]]

    def continuations(self, prompts: list[str], seed: int) -> list[str]:
        return sample_continuations(self.model, self.tok, prompts, self.setup.max_new_tokens, seed=seed)

    def describe_continuations(self, conts: list[str]) -> dict[str, float]:
        """What the forget continuations are (trainables.metrics.degenerate): no language, the retain language, fluent
        (under the frozen base, never the gate; scored as text on their own, since given a forget prompt the base
        penalises any switch of language, fluent or not), repetitive."""
        labels = self.language_id.label(conts)
        with self.adapter.disabled():
            nll = continuation_nll(self.model, self.tok, [""] * len(conts), conts)
        base = self.baseline.get("forget_cont_nll", math.nan)
        return {
            "es_none": sum(label is None for label in labels) / len(labels),
            "es_retain_language": sum(label == self.retain_language for label in labels) / len(labels),
            "forget_cont_nll": nll,
            "forget_cont_nll_ratio": nll / base if base > 0 else math.nan,
            "forget_cont_distinct": distinct_share(self.tok, conts),
        }
