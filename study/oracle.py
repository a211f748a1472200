"""The driver's side of robustness: the attack's settings from the study config, and the retain-only oracle,
measured once per study on its parent run before any trial starts.

The oracle is the "retrain from scratch" reference of TOFU and MUSE: the same model pretrained without the forget
language. Its forget_efficacy (against the study model's own forget-language token mass), its ES and its relearning
curve under the trials' attack are what an unlearned model is compared with: a model whose forgetting is real
relearns no faster than one that never saw the language: the attack brings back no larger a share of what it
forgot than of what the oracle "forgot" (`relearn_excess` <= 0 on a trial).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from study.config import SWEEP_FIELDS, StudyConfig
from trainables.metrics.robustness import (
    RobustnessSettings,
    check_attack_lines,
    forget_es,
    relearning_attack,
)
from trainables.trial.setup import TrialSetup

if TYPE_CHECKING:
    from trainables.evaluator import Evaluator

# Shown beside the objectives wherever the front is (pareto_front.json, `unlearn-study front`).
FRONT_METRICS = ("relearn_forget_efficacy", "relearn_es_forget", "relearn_half_steps", "relearn_excess",
                 "worst_relearn_forget_efficacy", "worst_relearn_es_forget", "worst_relearn_excess")
# What the oracle's continuations are, logged beside its forget figures (the calibration of every forget measure).
ORACLE_CALIBRATION = ("es_none", "es_retain_language", "forget_cont_nll_ratio", "forget_cont_distinct",
                      "forget_entropy", "degenerate")


def robustness_settings(cfg: StudyConfig) -> RobustnessSettings:
    """The trials' settings. The attack also runs at the scheduler's rungs when its result is a study objective:
    a rung result without every objective counts as the worst there (study.schedulers), and ranking rungs on the
    other objectives alone would keep trials whose forgetting is only hidden."""
    from study.schedulers import rung_milestones

    r, steps = cfg.robustness, cfg.train.steps
    at: set[int] = set()
    if r.relearn and "relearn_forget_efficacy" in cfg.search.objectives and cfg.scheduler.type != "fifo":
        at |= {int(m) for m in rung_milestones(cfg.scheduler.grace_period, steps, cfg.scheduler.reduction_factor)}
    if r.relearn and r.relearn_at == "eval":
        at |= set(range(cfg.train.eval_every, steps, cfg.train.eval_every))
    fields = r.model_dump(exclude={"oracle", "relearn_at", "audit", "audit_top", *SWEEP_FIELDS})
    return RobustnessSettings(**fields, relearn_at_steps=tuple(sorted(at)),
                              relearn_is_objective="relearn_forget_efficacy" in cfg.search.objectives)


def oracle_model_path(cfg: StudyConfig, setup: TrialSetup, log=print) -> str | None:
    """The oracle's model folder (building the embedded one if needed), or None when the study has none."""
    oracle = cfg.robustness.oracle
    if oracle is False or (oracle is None and cfg.model != "embedded"):
        return None
    if isinstance(oracle, str):
        return str(Path(oracle).resolve())
    from trainables.embedded import ensure_oracle

    forget = Path(setup.data.forget).stem if setup.embedded.data_files else setup.embedded_forget
    return str(ensure_oracle(setup.embedded, forget, log=log).model_dir)


def oracle_evaluators(setup: TrialSetup, oracle_path: str) -> tuple[Evaluator, Evaluator]:
    """The study model's Evaluator (the bare model: its baseline is what every ratio is against) and the oracle's,
    measured against that baseline. Nothing is trained; the oracle carries an untrained LoRA, built and seeded as a
    trial's is, so that the attacks on the adapter have parameters to train."""
    import torch

    from trainables.evaluator import Evaluator, study_data
    from trainables.methods import variants  # noqa: F401  (registers every adapter)
    from trainables.methods.registry import ADAPTERS, BuildContext
    from trainables.model.loading import load_model, load_tokenizer

    path, paths = setup.model_path(), setup.data_paths()
    tok = load_tokenizer(path, setup.trust_remote_code)
    data = study_data(paths, setup.train.seed, setup.heldout)
    study = Evaluator(setup, load_model(path, setup.trust_remote_code, setup.dtype, setup.device), tok, data,
                      model_path=path, data_paths=paths)
    if load_tokenizer(oracle_path, setup.trust_remote_code).get_vocab() != tok.get_vocab():
        raise ValueError(f"oracle {oracle_path}: its tokenizer differs from the study model's; token masses and "
                         "perplexities would not compare")
    model = load_model(oracle_path, setup.trust_remote_code, setup.dtype, setup.device)
    torch.manual_seed(setup.train.seed)  # as the Unlearner seeds before its adapter's initialisation
    context = BuildContext(model=model, tokenizer=tok, data=data, model_path=None, sae=setup.sae,
                           sae_pretrained=setup.sae_pretrained)
    adapter = ADAPTERS.build("lora", {}, context)
    return study, study.with_model(adapter.attach(model), adapter)


def oracle_calibration(study: Evaluator, oracle: Evaluator, prompts: int) -> dict[str, float]:
    """What the oracle's continuations of held-out forget prompts are, described as a trial's are (the study
    model judging their fluency; trainables.metrics.degenerate): `es_none`, `es_retain_language`, the fluency
    ratio, the distinct share, the next-token entropy, and whether the degenerate rule calls it broken (it must
    not: a model that never learnt the language is what real forgetting looks like)."""
    conts = oracle.continuations(oracle.prompts(oracle.data.forget, prompts), seed=oracle.setup.train.seed * 100_003)
    out = study.describe_continuations(conts)
    out["forget_entropy"] = oracle.eval_pass()["forget_entropy"]
    out["degenerate"] = float(oracle.setup.degenerate.is_degenerate(out))
    return out


def measure_oracle(setup: TrialSetup, oracle_path: str) -> dict[str, float]:
    """The oracle's figures, named `oracle_<metric>` after the trials' own: forget_efficacy against the study
    model's baseline token mass, es_forget (the trials' final prompt count), the relearning attack's results and,
    with language ID, what its continuations are (oracle_calibration)."""
    study, oracle = oracle_evaluators(setup, oracle_path)
    out = {f"oracle_{k}": v for k, v in oracle.evaluate_step().items() if k in ("token_mass", "forget_efficacy",
                                                                                 "utility")}
    out["study_model_token_mass"] = study.baseline["token_mass"]
    es = forget_es(oracle, setup.train.final_es_prompts)
    if es is not None:
        out["oracle_es_forget"] = es
    if setup.robustness.relearn:
        out.update({f"oracle_{k}": v for k, v in relearning_attack(oracle, setup.robustness).items()})
    if oracle.language_id is not None:
        calibration = oracle_calibration(study, oracle, setup.train.final_es_prompts)
        out.update({f"oracle_{k}": v for k, v in calibration.items() if k in ORACLE_CALIBRATION})
    return out


def with_oracle(cfg: StudyConfig, setup: TrialSetup, client, parent_run_id: str, log=print) -> TrialSetup:
    """Checks the attack's data, measures the oracle (if any) and logs it on the parent run; the setup the trials
    get, with the oracle's relearning figure for them to compare with."""
    from trainables.data import load_study_data

    data = load_study_data(setup.data_paths(), seed=setup.train.seed, heldout=setup.heldout)
    check_attack_lines(data, setup.robustness)
    path = oracle_model_path(cfg, setup, log)
    if path is None:
        return setup
    figures = measure_oracle(setup, path)
    client.set_tag(parent_run_id, "oracle", path)
    for key, value in figures.items():
        client.log_metric(parent_run_id, key, value, step=0)
    log(f"retain-only oracle: forget_efficacy {figures['oracle_forget_efficacy']:.3f}"
        + (f", after the relearning attack {figures['oracle_relearn_forget_efficacy']:.3f}"
           if "oracle_relearn_forget_efficacy" in figures else "")
        + (f"; its continuations of forget prompts: no language {figures['oracle_es_none']:.2f}, retain language "
           f"{figures['oracle_es_retain_language']:.2f}, fluency ratio {figures['oracle_forget_cont_nll_ratio']:.2f}, "
           f"distinct {figures['oracle_forget_cont_distinct']:.2f}"
           + (" (DEGENERATE by the study's rule: check trainables/metrics/degenerate.py's thresholds)"
              if figures["oracle_degenerate"] else "") if "oracle_es_none" in figures else ""))
    return with_oracle_share(setup, figures.get("oracle_relearn_share_back"))


def with_oracle_share(setup: TrialSetup, share: float | None) -> TrialSetup:
    return replace(setup, robustness=replace(setup.robustness, oracle_share_back=share))


def resumed_oracle_share(client, parent_run_id: str) -> float | None:
    """A resumed study's trials compare with the oracle figure its first run logged."""
    return client.get_run(parent_run_id).data.metrics.get("oracle_relearn_share_back")
