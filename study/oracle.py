"""The driver's side of robustness: the attack's settings from the study config, and the retain-only oracle,
measured once per study on its parent run before any trial starts.

The oracle is the "retrain from scratch" reference of TOFU and MUSE: the same model pretrained without the forget
language. Its forget_efficacy (against the study model's own forget-language token mass), its ES and its relearning
curve under the trials' attack are what an unlearned model is compared with: a model whose forgetting is real
relearns no faster than one that never saw the language: the attack brings back no larger a share of what it
forgot than of what the oracle "forgot" (`relearn_excess` <= 0 on a trial).

Which oracle (choose_oracle, before Ray starts): the one trained without the study's forget language, found from the
study's data, never from a file's name or the embedded default's; a given folder, or a cached build, whose report
says it was trained without another language or script is refused, naming both. Its identity is tagged on the
parent run (`oracle_forget_language`, `oracle_forget_script`, `oracle_trained_without`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from study.config import SWEEP_FIELDS, ConfigError, StudyConfig
from trainables.metrics.robustness import (
    RobustnessSettings,
    check_attack_lines,
    forget_es,
    relearning_attack,
)
from trainables.settings import EMBEDDED_ROLES
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


# The generated corpus's languages (its code-mixed set, hi_en, is no language of its own).
CORPUS_LANGUAGES = (EMBEDDED_ROLES["retain"], EMBEDDED_ROLES["forget"], *EMBEDDED_ROLES["xlang"])


@dataclass(frozen=True)
class OracleChoice:
    """The retain-only oracle of a study, chosen before Ray starts: its model folder (an embedded oracle's may not
    be built yet), what it was trained without (`language`, ISO 639-1; `script`, whose letters it never saw; None
    where a given folder does not say) and, for an embedded oracle, the corpus set it is built without."""

    model_dir: str
    language: str | None
    script: str | None
    corpus_set: str | None = None

    def tags(self, report: dict | None) -> dict[str, str]:
        """The parent run's tags: who the oracle is, with the lines its build dropped when its report says."""
        if self.corpus_set is not None:
            dropped = (report or {}).get("lines_dropped")
            lines = f"{sum(dropped.values())} lines" if dropped is not None else "every line"
            without = (f"the embedded corpus's set {self.corpus_set} and {lines} of its other sets with a "
                       f"{self.script} letter")
        elif self.language is None and self.script is None:
            without = "not stated (no report.json in or beside the folder)"
        else:
            without = f"{_named(self.language, self.script)}, as its report says"
        return {"oracle_forget_language": self.language or "unknown", "oracle_forget_script": self.script or "unknown",
                "oracle_trained_without": without}


def study_forget_language(setup: TrialSetup) -> tuple[str | None, str | None]:
    """The study's forget language and the forget data's script, as prepare identified them from the forget data
    (None for what a setup prepare did not make leaves unstated)."""
    return setup.language_of("forget"), setup.forget_script or None


def embedded_oracle_set(setup: TrialSetup, corpus_scripts: dict[str, str | None]) -> str:
    """The set of the embedded model's corpus that its oracle is built without, found from the study's forget data.

    - The embedded default's own data: the forget set is the corpus's set `embedded.forget`.
    - The model pretrained on the study's files (`embedded.train_on_data`): the set made of the forget file itself
      (the builder names each file's set after it).
    - The study's files on the generated corpus's model: the corpus language the forget file's lines are identified
      as (with the same script), else the one corpus language written in the forget file's script.

    `corpus_scripts`: each corpus set's script, as the main build's report states it."""
    if setup.data is None:
        return setup.embedded_forget
    if setup.embedded.data_files:
        return Path(setup.data.forget).stem
    language, script = study_forget_language(setup)
    if language in CORPUS_LANGUAGES and corpus_scripts.get(language) == script:
        return language
    same_script = [name for name in CORPUS_LANGUAGES if corpus_scripts.get(name) == script]
    if len(same_script) == 1:
        return same_script[0]
    raise ConfigError(f"robustness.oracle: the embedded corpus has no language of the forget file {setup.data.forget} "
                      f"({language}, script {script}; its languages: {', '.join(CORPUS_LANGUAGES)}), so no oracle "
                      "trained without it can be built: give the folder of a model trained without it, or set "
                      "robustness.oracle: false")


def report_identity(report: dict) -> tuple[str | None, str | None]:
    """What an oracle build's report says it was trained without: (language, script). A build from before the
    report named the language left a set of the generated corpus out, and that set's name is its language."""
    language = report.get("forget_language")
    if language is None and not report.get("spec", {}).get("data_files") and report.get("forget") in CORPUS_LANGUAGES:
        language = report["forget"]
    return language, report.get("forget_script")


def _named(language: str | None, script: str | None) -> str:
    return f"{language or 'an unstated language'} (script {script or 'unstated'})"


def check_oracle_report(report: dict, where: str, language: str | None, script: str | None) -> None:
    """Refuse (one line naming robustness.oracle and both languages) an oracle whose report says it was trained
    without another language or script than the study forgets. What the report leaves unstated is not compared."""
    their_language, their_script = report_identity(report)
    if (their_script is not None and their_script != script) or (
            their_language is not None and language is not None and their_language != language):
        raise ConfigError(f"robustness.oracle: {where} was trained without {_named(their_language, their_script)}, "
                          f"but this study forgets {_named(language, script)}: its forgetting would be compared with "
                          "a model that knows the forget language")


def _report_of(folder: Path) -> dict | None:
    """An oracle folder's build report: in the folder, or beside it (this project's builds keep the model in
    <build>/model and the report in <build>/report.json)."""
    for path in (folder / "report.json", folder.parent / "report.json"):
        if path.is_file():
            report = json.loads(path.read_text())
            if "forget_script" in report or "forget" in report:
                return report
    return None


def choose_oracle(cfg: StudyConfig, setup: TrialSetup, log=print) -> OracleChoice | None:
    """The study's oracle, or None when it has none; a mismatch is refused here, before Ray starts (prepare calls
    this). `setup` is prepared: its forget language and script are identified from the forget data."""
    oracle = cfg.robustness.oracle
    if oracle is False or (oracle is None and cfg.model != "embedded"):
        return None
    language, script = study_forget_language(setup)
    if isinstance(oracle, str):
        folder = Path(oracle).resolve()
        report = _report_of(folder)
        if report is None:
            log(f"robustness.oracle: {folder} has no build report: what it was trained without cannot be checked; "
                f"it must be a model that never learnt {_named(language, script)}")
            return OracleChoice(str(folder), None, None)
        check_oracle_report(report, str(folder), language, script)
        return OracleChoice(str(folder), *report_identity(report))
    from trainables.embedded import ensure_embedded

    main = ensure_embedded(setup.embedded, log=log)
    corpus_set = embedded_oracle_set(setup, {n: e.get("script") for n, e in main.report["languages"].items()})
    if corpus_set not in main.report["languages"]:
        raise ConfigError(f"robustness.oracle: no set {corpus_set!r} in the embedded corpus "
                          f"(sets: {', '.join(main.report['languages'])})")
    if corpus_set in CORPUS_LANGUAGES and not setup.embedded.data_files:  # a generated set: its name is its language
        if corpus_set != language and setup.data is not None:
            log(f"retain-only oracle: no {language} in the embedded corpus; the oracle is built without "
                f"{corpus_set}, its language written in {script}")
        language = corpus_set
    root = main.root / f"oracle-{corpus_set}"
    cached = root / "report.json"
    if cached.is_file():  # a build cached by another version of this code, or a damaged cache
        check_oracle_report(json.loads(cached.read_text()), f"the cached oracle {root}", language, script)
    return OracleChoice(str(root / "model"), language, script, corpus_set)


def oracle_model_path(cfg: StudyConfig, setup: TrialSetup, log=print) -> str | None:
    """The oracle's model folder (building the embedded one if needed), or None when the study has none."""
    built = built_oracle(cfg, setup, log)
    return built[0].model_dir if built else None


def built_oracle(cfg: StudyConfig, setup: TrialSetup, log=print) -> tuple[OracleChoice, dict | None] | None:
    """The chosen oracle, built if it is an embedded one not yet built, and its build report (None if it has none)."""
    choice = choose_oracle(cfg, setup, log)
    if choice is None or choice.corpus_set is None:
        return (choice, _report_of(Path(choice.model_dir))) if choice else None
    from trainables.embedded import ensure_oracle

    built = ensure_oracle(setup.embedded, choice.corpus_set, log=log)
    check_oracle_report(built.report, f"the oracle {built.root}", choice.language, choice.script)
    return choice, built.report


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
    built = built_oracle(cfg, setup, log)
    if built is None:
        return setup
    choice, report = built
    tags = choice.tags(report)
    log(f"retain-only oracle {choice.model_dir}: trained without {tags['oracle_trained_without']}")
    figures = measure_oracle(setup, choice.model_dir)
    client.set_tag(parent_run_id, "oracle", choice.model_dir)
    for key, value in tags.items():
        client.set_tag(parent_run_id, key, value)
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
