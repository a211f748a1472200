"""One unlearning run, step by step: the loop the Ray trainable and the mmie.py entry points both drive.

A step makes the updates its optimiser scheme asks for (a forget update, then retain updates), each on a batch
drawn deterministically from (seed, phase, step), so a run restored from a checkpoint at step k continues exactly
as the uninterrupted run would. Per-step evaluation is one forward pass over a fixed held-out batch (forget lines,
then retain lines); the costlier collateral perplexities and extraction strength run every eval_every steps.
A variant with a gate evaluates through it (training never does); a gate-only variant has no steps at all.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace

import torch

from trainables.data import StudyData
from trainables.evaluator import VOCAB_SCAN_LINES, Evaluator, study_data
from trainables.language.lid_ensemble import ensemble_for
from trainables.language.scripts import dominant_script
from trainables.methods import variants  # noqa: F401  (registers every piece and variant)
from trainables.methods.lr_schedule import lr_multiplier
from trainables.methods.registry import (
    ADAPTERS,
    GATES,
    OBJECTIVES,
    OPTIMIZERS,
    RETAIN_OBJECTIVES,
    WEIGHTINGS,
    BuildContext,
    Variant,
    get_variant,
)
from trainables.methods.weighting import Product
from trainables.metrics import base_cache
from trainables.metrics import mmie as mmie_metrics
from trainables.metrics.core import gradient_norm, token_nll
from trainables.model.batching import pad_rows, to_device, whole_set_rows
from trainables.model.loading import load_model, load_tokenizer
from trainables.trial.setup import TrialSetup

# Kept under its old name: evaluate_mmie reads it.
_VOCAB_SCAN_LINES = VOCAB_SCAN_LINES


class Unlearner:
    """One run. In a study it loads the model and data named by the setup (cached per process); the mmie.py entry
    points hand it their own model, tokenizer and data instead (`model`, `tokenizer`, `data`, `variant`). Its
    `evaluator` (trainables.evaluator) measures it."""

    def __init__(self, setup: TrialSetup, hparams: dict, *, model=None, tokenizer=None, data: StudyData | None = None,
                 variant: Variant | None = None):
        self.setup = setup
        self.hparams = dict(hparams)
        self.variant = variant or get_variant(hparams["variant"])
        self.trains = self.variant.trains
        self.steps = setup.train.steps if self.trains else 0
        self._setup_model(model, tokenizer)
        self._setup_data(data)
        self._setup_adapter()
        if self.trains:
            self._setup_objectives()
            self._setup_optimizers()
        self.step = 0
        self.tokens_seen = 0
        self.restores = 0  # how many times this run came back from a checkpoint
        self.evaluator = Evaluator(setup, self.model, self.tok, self.data, self.adapter, model_path=self.model_path,
                                   data_paths=self.data_paths)  # measures the base model's baseline
        self._setup_gate()
        if self.trains:
            self.weighting.prepare(self._frozen_forget_losses)

    # ---- set-up, in the order __init__ runs it (the seed is set first: the adapter's initialisation draws from it)

    def _setup_model(self, model, tokenizer) -> None:
        """Seeds torch with the trial's seed, then the base model and its tokenizer: the setup's (cached per
        process) or the ones handed in."""
        torch.manual_seed(self.setup.train.seed)
        if model is None:
            path = self.setup.model_path()
            self.tok = load_tokenizer(path, self.setup.trust_remote_code)
            model = load_model(path, self.setup.trust_remote_code, self.setup.dtype, self.setup.device,
                               self.setup.quantization)
        else:
            path, self.tok = None, tokenizer
        self.model = model
        self.model_path = path  # None: a model handed in, whose base measurements are not shared

    def _setup_data(self, data: StudyData | None) -> None:
        """The study's data (the setup's, cached per process, or the data handed in) and its training lines as
        token ids."""
        self.data_paths = None  # None: data handed in, whose forget-token mask is not shared
        if data is None:
            self.data_paths = self.setup.data_paths()
            data = study_data(self.data_paths, self.setup.train.seed, self.setup.heldout)
        self.data = data
        self.train_tokens = {
            phase: [self.tok.encode(t, add_special_tokens=False) for t in s.train]
            for phase, s in (("forget", self.data.forget), ("retain", self.data.retain))
        }
        # padding "mmie": each set tokenised once, as mmie.py does; a batch is some of its rows.
        self.whole_set_rows = None
        if self.setup.train.padding == "mmie":
            self.whole_set_rows = {phase: whole_set_rows(self.tok, s.train, self.setup.train.max_len)
                                   for phase, s in (("forget", self.data.forget), ("retain", self.data.retain))}

    def _setup_adapter(self) -> None:
        """The adapter, attached: from here on `self.model` is the adapted model, and `self.context`, what every
        piece is built from besides its knobs, holds both. A gate-only variant keeps an (untrained, identity)
        adapter too, so every run evaluates the same way."""
        context = BuildContext(model=self.model, tokenizer=self.tok, data=self.data, model_path=self.model_path,
                               sae=self.setup.sae, sae_pretrained=self.setup.sae_pretrained)
        self.adapter = ADAPTERS.build(self.variant.adapter_of(self.hparams), self.hparams, context)
        self.model = self.adapter.attach(self.model)
        self.context = replace(context, model=self.model, adapter=self.adapter)

    def _setup_objectives(self) -> None:
        """The forget objective, the retain objective and the sample weighting (several multiply)."""
        self.objective = OBJECTIVES.build(self.variant.objective, self.hparams, self.context)
        self.retain_objective = RETAIN_OBJECTIVES.build(self.variant.retain_objective_of(self.hparams), self.hparams,
                                                        self.context)
        parts = [WEIGHTINGS.build(name, self.hparams, self.context) for name in self.variant.weightings]
        self.weighting = parts[0] if len(parts) == 1 else Product(parts)

    def _setup_optimizers(self) -> None:
        """The optimiser scheme over the adapter's parameters, the base learning rates the schedule scales per
        update, and the number of updates per step."""
        self.optim = OPTIMIZERS.build(self.variant.optimizer, self.hparams, self.context)
        self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in self.optim.optimizers()]
        self.updates_per_step = len(self.optim.phases(0))

    def _setup_gate(self) -> None:
        """The variant's gate (None without one), fitted on the base model after the base measurements."""
        if self.variant.gate:
            if self.model_path is None:
                raise ValueError(f"variant {self.variant.name}: a gate needs the model's path (its SAE cache key); "
                                 "outside a study, build it with trainables.methods.gates.sae_gates.build_gate")
            self.evaluator.gate = GATES.build(self.variant.gate, self.hparams, self.context)

    # ---- what the evaluator holds, read where the run reads it ------------------------------------------------

    @property
    def gate(self):
        return self.evaluator.gate

    @property
    def baseline(self) -> dict[str, float]:
        return self.evaluator.baseline

    @baseline.setter
    def baseline(self, value: dict[str, float]) -> None:
        self.evaluator.baseline = value

    @property
    def forget_language(self) -> str:
        return self.evaluator.forget_language

    @property
    def retain_language(self) -> str:
        return self.evaluator.retain_language

    @property
    def language_id(self):
        return self.evaluator.language_id

    @property
    def forget_mask(self) -> torch.Tensor:
        return self.evaluator.forget_mask

    @property
    def eval_batch(self) -> dict[str, torch.Tensor]:
        return self.evaluator.eval_batch

    @property
    def eval_slices(self) -> dict[str, slice]:
        return self.evaluator.eval_slices

    # ---- training -------------------------------------------------------------------------------------------

    def _batch(self, phase: str, k: int) -> dict[str, torch.Tensor]:
        key = f"{self.setup.train.seed}:{phase}:{self.step}:{k}"
        lines = self.train_tokens[phase]
        indices = None
        if phase == "forget":  # a sampler piece (mmie.py's --forget_reweight) may choose the lines
            rng = torch.Generator().manual_seed(int.from_bytes(key.encode(), "little") % 2**63)
            train = self.setup.train
            indices = self.weighting.draw(len(lines), train.batch_size, rng, self.step, train.steps,
                                          self._current_forget_losses)
        if indices is None:
            rng = random.Random(key)
            indices = [rng.randrange(len(lines)) for _ in range(self.setup.train.batch_size)]
        batch = self._rows(phase, indices)
        return to_device(batch, self.model.device) | {"indices": torch.tensor(indices)}

    def _rows(self, phase: str, indices: list[int]) -> dict[str, torch.Tensor]:
        """Training lines (by index) as a batch, padded as the setup's `padding` says."""
        if self.whole_set_rows is not None:
            rows = torch.tensor(indices, dtype=torch.long)
            return {k: v[rows] for k, v in self.whole_set_rows[phase].items()}
        return pad_rows(self.tok, [self.train_tokens[phase][i] for i in indices], self.setup.train.max_len)

    def _forward(self, batch) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits

    @torch.no_grad()
    def _line_losses(self, indices: list[int], chunk: int = 64) -> torch.Tensor:
        """Mean NLL per token of forget training lines (by index) under the model as it is now."""
        out = []
        for start in range(0, len(indices), chunk):
            batch = to_device(self._rows("forget", indices[start : start + chunk]), self.model.device)
            total, count = token_nll(self._forward(batch), batch["labels"])
            out.append((total / count.clamp_min(1)).cpu())
        return torch.cat(out)

    def _current_forget_losses(self, indices: list[int]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            return self._line_losses(indices)
        finally:
            self.model.train(was_training)

    def _frozen_forget_losses(self) -> torch.Tensor:
        """Mean NLL of every forget training line under the frozen model (static LoReUn scores these once)."""
        with self.adapter.disabled():
            return self._line_losses(list(range(len(self.train_tokens["forget"]))))

    @torch.no_grad()
    def _base_logits(self, batch) -> torch.Tensor:
        with self.adapter.disabled():
            return self._forward(batch)

    def _loss(self, phase: str, batch) -> torch.Tensor:
        logits = self._forward(batch)
        if phase == "retain":
            loss = self.retain_objective.loss(logits, batch["labels"], lambda: self._base_logits(batch))
        else:
            nll_sum, n_tokens = token_nll(logits, batch["labels"])
            ref_nll_sum = token_nll(self._base_logits(batch), batch["labels"])[0] if self.objective.uses_reference else None
            weights = self.weighting.weights(
                (nll_sum / n_tokens.clamp_min(1)).detach(), batch["indices"], self.step, self.setup.train.steps
            )
            loss = self.objective.loss(nll_sum, n_tokens, ref_nll_sum, weights)
        penalty = self.adapter.penalty()
        return loss if penalty is None else loss + penalty

    def _schedule_lr(self, update: int) -> None:
        factor = lr_multiplier(self.setup.train.lr_schedule, update, self.steps * self.updates_per_step,
                               self.setup.train.warmup_ratio)
        for opt, lrs in zip(self.optim.optimizers(), self.base_lrs):
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr * factor

    def train_step(self) -> dict[str, float]:
        """One step's updates. Returns losses, the largest gradient norm and whether the step diverged."""
        if not self.trains:
            raise RuntimeError(f"variant {self.variant.name} trains nothing")
        started = time.perf_counter()
        self.model.train()
        params = self.adapter.parameters()
        losses: dict[str, list[float]] = {"forget": [], "retain": []}
        grad_norm = 0.0
        diverged = False
        for k, phase in enumerate(self.optim.phases(self.step)):
            batch = self._batch(phase, k)
            loss = self._loss(phase, batch)
            self._schedule_lr(self.step * self.updates_per_step + k)
            opt = self.optim.optimizer(phase)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = gradient_norm(params)
            if not (math.isfinite(loss.item()) and math.isfinite(norm)):
                diverged = True
                losses[phase].append(loss.item())
                break
            if self.setup.train.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, self.setup.train.max_grad_norm)
            opt.step()
            losses[phase].append(loss.item())
            grad_norm = max(grad_norm, norm)
            self.tokens_seen += int(batch["attention_mask"].sum())
        self.step += 1
        out = {f"loss_{p}": sum(v) / len(v) for p, v in losses.items() if v}
        out.update(grad_norm=grad_norm, diverged=float(diverged), tokens=float(self.tokens_seen))
        out["seconds_per_step"] = time.perf_counter() - started
        return out

    # ---- evaluation (trainables.evaluator) ------------------------------------------------------------------

    def _gated(self):
        """The gate's hooks for an evaluation pass (nothing without a gate); removed on exit."""
        return self.evaluator.gated()

    def evaluate_step(self) -> dict[str, float]:
        """The cheap per-step metrics (Evaluator.evaluate_step)."""
        return self.evaluator.evaluate_step()

    def evaluate_collateral(self) -> dict[str, float]:
        """Utility on the mixed set and on each cross-lingual set, and their summary xlang_utility."""
        return self.evaluator.evaluate_collateral()

    def evaluate_full(self, prompts: int) -> dict[str, float]:
        """Collateral utilities and extraction strength on sampled continuations of held-out prompts; with a gate,
        its firing rates on held-out forget and retain lines and on the prompts of each ES set, and its build
        figures."""
        out = self.evaluator.evaluate_collateral()
        out.update(self.evaluate_mmie(final=prompts >= self.setup.train.final_es_prompts))
        out.update(self.evaluator.evaluate_gate())
        out.update(self.evaluator.evaluate_continuations(prompts, self.step))
        return out

    def evaluate_mmie(self, final: bool, lines: StudyData | None = None) -> dict[str, float]:
        """mmie.py's measurements of the model as evaluated (through its gate), `mmie/<name>`, on the lines mmie.py
        will read from the exported files; the base model's, `mmie/base/<name>` (the adapter disabled, no gate;
        measured once per process and model); mmie.py's gates against them (`mmie/gate_<gate>` <= 0 passes,
        `mmie/gates_feasible` for the search's constraints) and its verdict (`mmie/verdict_proceed`).
        `lines`: other data read as mmie.py's files (each set's `train`; bench/bench_export_reproduction.py
        measures on held-out lines so): the base model is then measured on them too, not cached."""
        cfg = self.setup.mmie_eval
        if not cfg.enabled:
            return {}
        script = self.setup.forget_script or dominant_script(self.data.forget.train[:_VOCAB_SCAN_LINES])[0]
        common = dict(target=self.forget_language, script=script, cfg=cfg, seed=self.setup.train.seed,
                      lid=ensemble_for(cfg.use_xlmr, cfg.use_fasttext))
        data = self.data if lines is None else lines

        def measure_base():
            return mmie_metrics.measure(self.model, self.tok, data, edited=self.adapter.disabled, **common)

        if lines is None:
            key = disk_key = None
            if self.model_path is not None:
                key = (self.model_path, self.setup.dtype, self.setup.quantization, self.setup.data_paths(),
                       self.setup.train.seed, self.setup.heldout, cfg)

                def disk_key():
                    return base_cache.disk_key(self.model_path, self.setup.data_paths(), dict(
                        dtype=self.setup.dtype, quantization=self.setup.quantization, device=self.setup.device,
                        seed=self.setup.train.seed, heldout=self.setup.heldout, mmie=cfg,
                        target=self.forget_language, script=script))
            base = mmie_metrics.base_measurements(key, self, measure_base, disk_key)
            if getattr(self, "_mmie_base_losses", None) is None:
                self._mmie_base_losses = {}
            base_losses = self._mmie_base_losses
        else:  # other lines: the base model measured on them afresh, never into the cache of the study's own
            base, base_losses = measure_base(), None
        out = mmie_metrics.measure(self.model, self.tok, data, edited=self._gated, base=self.adapter.disabled,
                                   checkpoint=not final, base_losses=base_losses, **common)
        out.update(base)
        out.update(mmie_metrics.gate_metrics(out, cfg))
        return out

    # ---- checkpoints ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "restores": self.restores,
            "adapter": self.adapter.state_dict(),
            "optimizer": self.optim.state_dict() if self.trains else {},
            "baseline": dict(self.baseline),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.restores = int(state["restores"]) + 1
        self.adapter.load_state_dict(state["adapter"])
        if self.trains:
            self.optim.load_state_dict(state["optimizer"])
        self.baseline = dict(state["baseline"])

    def save(self, path) -> None:
        torch.save(self.state_dict(), path)

    def restore(self, path) -> None:
        self.load_state_dict(torch.load(path, weights_only=True, map_location=self.model.device))
