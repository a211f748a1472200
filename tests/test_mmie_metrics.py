"""mmie.py's measurements (trainables.metrics.mmie), its language-ID ensemble, and its acceptance gates as Optuna
constraints: on hand-made texts, the real LID packages, a real Optuna study and the embedded model."""

import math
from contextlib import nullcontext

import optuna
import pytest
import torch

from study.results.export import pick
from study.results.front import StudyRecord, TrialRecord
from study.search import PartialAwareOptunaSearch
from trainables.language.lid_ensemble import UND, LidEnsemble, default_ensemble, plurality
from trainables.metrics import mmie as mm

HINDI = "राम हर दिन बाज़ार जाता है और वहाँ से फल लाता है"
ENGLISH = "James goes to the market every day and buys some fruit there"


@pytest.fixture(scope="module")
def lid():
    return default_ensemble()


def test_es_is_how_early_hindi_starts(lid):
    n = len(HINDI.split())
    assert mm.word_prefix_es([HINDI], lid, "hi", "DEVANAGARI") == pytest.approx(1 - 1 / n)
    assert mm.word_prefix_es(["राम"], lid, "hi", "DEVANAGARI") == 0.0  # a one-word Hindi reply scores 0
    assert mm.word_prefix_es([ENGLISH], lid, "hi", "DEVANAGARI") == 0.0
    assert mm.word_prefix_es([""], lid, "hi", "DEVANAGARI") == 0.0
    half = " ".join(ENGLISH.split()[:6] + HINDI.split()[:6])
    assert 0 <= mm.word_prefix_es([half], lid, "hi", "DEVANAGARI") <= 0.5 - 1 / 12
    # The mean over texts.
    assert mm.word_prefix_es([HINDI, ENGLISH], lid, "hi", "DEVANAGARI") == pytest.approx((1 - 1 / n) / 2)


def test_script_guard_counts_the_whole_block_as_mmie_does(lid):
    # The danda (U+0964) lies in the Devanagari block: mmie.py's script voter calls this English line Hindi (its
    # vote ties langid's "en" and goes first), and so does its guard, from the third word on.
    text = "James went home। He was tired after the long day"
    assert lid.infer(text) == "hi" and lid.infer(text.replace("।", ".")) == "en"
    assert mm.word_prefix_es([text], lid, "hi", "DEVANAGARI") == pytest.approx(1 - 3 / 10)
    assert mm.script_guard("DEVANAGARI")("home।") and not mm.script_guard("DEVANAGARI")("home.")
    assert mm.word_prefix_es([text.replace("।", ".")], lid, "hi", "DEVANAGARI") == 0.0


def test_plurality_vote_ignores_und_and_breaks_ties_by_voter_order():
    assert plurality(["hi", "en", "en"]) == "en"
    assert plurality(["en", "hi"]) == "en" and plurality(["hi", "en"]) == "hi"
    assert plurality([UND, "hi", "en", UND, "en"]) == "en"
    assert plurality([UND, "bn", "hi"]) == "bn"
    assert plurality([UND, UND]) == UND


def test_ensemble_voters_and_the_langid_shortcut(lid):
    assert lid.present[:2] == ["script", "cue_words"] and not lid.missing
    assert lid.votes(HINDI)[0] == "hi" and lid.infer(HINDI) == "hi" and lid.infer(ENGLISH) == "en"
    assert lid.infer("yaar kya scene hai, bahut accha") == "hi"  # two cue words and langid/fastText agreement
    assert LidEnsemble(voters=("script",)).infer("ਸਤ ਸ੍ਰੀ ਅਕਾਲ") == "pa"
    assert lid.infer("   ") == UND
    # is_label skips langid only when its vote cannot matter: it always agrees with the full vote.
    texts = [" ".join(t.split()[:i]) for t in (HINDI, ENGLISH, "James राम market", "main ghar hai") for i in (1, 2, 3, 5)]
    for text in texts:
        for code in ("hi", "en"):
            assert lid.is_label(text, code) == (lid.infer(text) == code), (text, code)


def test_gates_follow_mmie_fallback_rule():
    cfg = mm.MmieEvalConfig()
    m = {"mmie/es_forget": 0.3, "mmie/base/es_forget": 0.8, "mmie/ppl_retain": 2.2, "mmie/base/ppl_retain": 2.0,
         "mmie/es_mixed": 0.6, "mmie/base/es_mixed": 0.9}
    gates = mm.gate_constraints(m, cfg)
    assert gates["G1_es_forget"] == pytest.approx(0.3 - 0.4)
    assert gates["G2_ppl"] == pytest.approx(1.1 - 1.10)
    assert gates["G3_es_mixed"] == pytest.approx(0.6 - 0.63)
    zero_base = mm.gate_constraints({"mmie/es_forget": 0.05, "mmie/base/es_forget": 0.0}, cfg)
    assert zero_base == {"G1_es_forget": pytest.approx(0.05 - 0.1)}  # 0.1 when the base is 0; no mixed: no G3
    # G3 has the same fallback (issue 22, item 5): 0.1 when the base's mixed ES is 0
    mixed_zero = mm.gate_constraints({"mmie/es_mixed": 0.05, "mmie/base/es_mixed": 0.0}, cfg)
    assert mixed_zero == {"G3_es_mixed": pytest.approx(0.05 - 0.1)}
    diverged = mm.gate_constraints({"mmie/es_forget": math.nan, "mmie/base/es_forget": 0.5}, cfg)
    assert diverged == {"G1_es_forget": math.inf}
    assert mm.gates_verdict({"mmie/gates_feasible": 1.0}) == "feasible"
    assert mm.gates_verdict({"mmie/gates_feasible": 0.0}) == "infeasible" and mm.gates_verdict({}) == "unknown"


def test_auc_ranks_positives_above_negatives():
    assert mm.auc([3, 4], [1, 2]) == 1.0 and mm.auc([1, 2], [3, 4]) == 0.0 and mm.auc([1], [1]) == 0.5


def test_infeasible_trial_is_never_on_optunas_front():
    """The searcher tells Optuna the gates before `tell` (in the form optuna-dashboard reads too, their names on the
    study): a trial that dominates on both objectives but fails a gate is not among study.best_trials."""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    search = PartialAwareOptunaSearch(space=space, metric=["forget_efficacy", "utility"], mode=["max", "max"],
                                      sampler=optuna.samplers.TPESampler(seed=0), study_name="gates",
                                      mmie_constraints=True)
    results = {
        "passes": {"forget_efficacy": 0.6, "utility": 0.9, "mmie/gate_G1_es_forget": -0.2, "mmie/gate_G2_ppl": -0.1},
        "fails": {"forget_efficacy": 0.9, "utility": 0.95, "mmie/gate_G1_es_forget": 0.3, "mmie/gate_G2_ppl": -0.1},
        "unknown": {"forget_efficacy": 0.95, "utility": 0.99},
    }
    for trial_id, result in results.items():
        assert search.suggest(trial_id) is not None
        search.on_trial_complete(trial_id, {**result, "finished": 1.0})
    trials = {t.number: t for t in search._ot_study.trials}
    # every gate, by position (no mixed set and no semantic ES here: G3, G1S and G3S are 0, as gates_pass lets
    # them pass)
    assert trials[1].system_attrs["constraints"] == [0.3, -0.1, 0.0, 0.0, 0.0]
    assert trials[2].system_attrs["constraints"] == [1.0, 1.0, 0.0, 0.0, 0.0]  # never measured: infeasible
    assert search._ot_study.user_attrs["constraints"] == list(mm.ACCEPTANCE_GATES)
    assert [t.number for t in search._ot_study.best_trials] == [0]


def _trial(tid, fe, ut, feasible):
    metrics = {"forget_efficacy": fe, "utility": ut}
    if feasible is not None:
        metrics["mmie/gates_feasible"] = float(feasible)
    return TrialRecord(run_id=tid, trial_id=tid, status="completed", params={"variant": "ga"}, metrics=metrics,
                       pareto=False, pareto_rank=None)


def test_pick_mmie_gates_is_the_most_forgetting_feasible_trial():
    record = StudyRecord(study="s", tracking_uri="", parent_run_id="p", objectives=["forget_efficacy", "utility"],
                         steps=1, seed=0, config={"utility_floor": "None"},
                         trials=[_trial("a", 0.9, 0.8, False), _trial("b", 0.7, 0.9, True), _trial("c", 0.5, 1.0, True),
                                 _trial("d", 0.95, 0.9, None)])
    assert pick(record, "mmie-gates").trial_id == "b"
    assert pick(record, "mmie-gates", min_utility=0.95).trial_id == "c"
    record.trials = record.trials[:1]
    with pytest.raises(ValueError, match="acceptance gates"):
        pick(record, "mmie-gates")


@pytest.mark.slow
def test_mia_auc_points_towards_the_set_the_adapter_learnt(embedded):
    """Loss-based MIA on the embedded model: an adapter trained towards the forget lines makes them look like
    members (AUC near 1); one trained away from them (gradient ascent) makes them look like non-members (near 0).
    Min-K% Prob needs no reference: it moves the same way."""
    from peft import LoraConfig, get_peft_model

    from trainables.data import load_study_data
    from trainables.model.batching import encode
    from trainables.model.loading import load_model, load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(str(embedded.model_dir))
    data = load_study_data(embedded.data_paths(), seed=0, heldout=128)
    members, nonmembers = data.forget.train[:16], data.retain.train[:16]
    out = {}
    for direction in (1.0, -1.0):
        model = get_peft_model(load_model(str(embedded.model_dir)),
                               LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        batch = encode(tok, members, 64)
        for _ in range(8):
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
            (direction * loss).backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        base, edited = model.disable_adapter, nullcontext
        out[direction] = (mm.loss_mia(model, tok, members, nonmembers, edited, base)
                          | {"mia_min_k_auc": mm.min_k_auc(model, tok, members, nonmembers, 0.2, edited)},
                          mm.min_k_auc(model, tok, members, nonmembers, 0.2, base))
    towards, mink_base = out[1.0]
    away, _ = out[-1.0]
    assert towards["mia_auc"] == 1.0 and towards["mia_acc"] == 1.0
    assert away["mia_auc"] == 0.0 and away["mia_acc"] <= 0.5  # ascent on Hindi raises English loss too
    mink_towards, mink_away = towards["mia_min_k_auc"], away["mia_min_k_auc"]
    assert mink_towards > mink_base > mink_away


@pytest.mark.slow
def test_mmie_evaluation_keeps_the_training_stream_and_reports_base_and_gates(embedded, tmp_path, monkeypatch):
    from trainables.metrics import base_cache
    from trainables.trial.setup import TrainSettings, TrialSetup
    from trainables.unlearner import Unlearner

    monkeypatch.setattr(base_cache, "_path", lambda key: tmp_path / f"{key}.json")
    mm._BASE_CACHE.clear()  # another test on this worker may have measured the same base model

    small = mm.MmieEvalConfig(items=2, final_items=2, max_new_tokens=6, teacher_forced_items=8)
    setup = TrialSetup(train=TrainSettings(steps=2, batch_size=4), languages=(("forget", "hi"), ("retain", "en")),
                       mmie_eval=small)
    hp = {"variant": "ga", "lr": 1e-3, "rank": 8, "target_modules": "q_proj,v_proj"}
    with_eval, without = Unlearner(setup, hp), Unlearner(setup, hp)
    with_eval.train_step()
    out = with_eval.evaluate_mmie(final=True)
    without.train_step()
    assert with_eval.train_step()["loss_forget"] == without.train_step()["loss_forget"]
    sets = ("es_forget", "es_mixed", "es_adversarial", "crossling_es_ur", "crossling_es_pa", "crossling_es_bn")
    for name in (*sets, "ppl_retain", "token_kl_retain", "mia_auc", "mia_acc"):
        assert math.isfinite(out[f"mmie/{name}"]), name
    for name in (*sets, "ppl_retain"):
        assert f"mmie/base/{name}" in out
    assert out["mmie/token_kl_retain"] > 0 and 0 <= out["mia_min_k_auc"] <= 1
    for name in ("es_semantic", "es_mixed_semantic", "empty_reply_share"):
        assert f"mmie/{name}" in out and f"mmie/base/{name}" in out, name
    assert {f"mmie/gate_{g}" for g in (*mm.ACCEPTANCE_GATES, "G5_xlang_leak", "G6_mia", "G7_adversarial")} <= set(out)
    assert out["mmie/gates_feasible"] == float(all(out[f"mmie/gate_{g}"] <= 0 for g in mm.ACCEPTANCE_GATES))
    every_gate = [k for k in out if k.startswith("mmie/gate_")]
    assert out["mmie/verdict_proceed"] == float(all(out[k] <= 0 for k in every_gate))
    assert out["mmie/items_exact"] == 0.0  # final_items and teacher_forced_items cap mmie.py's counts
    assert not mm.gates_pass({"G2_ppl": -1.0})  # G1 not measured: not a pass
    checkpoint = with_eval.evaluate_mmie(final=False)  # ES of the forget set only, by default
    assert "mmie/es_forget" in checkpoint and "mmie/es_mixed" not in checkpoint and "mmie/mia_auc" in checkpoint

    # Other lines read as mmie.py's files (bench/bench_export_reproduction.py passes the held-out ones): the study's
    # own lines give its figures; other lines give other base figures, which never replace the cached ones.
    from dataclasses import replace

    from trainables.data import StudyData

    def same(a, b):
        return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)

    own = with_eval.evaluate_mmie(final=True)
    assert same(with_eval.evaluate_mmie(final=True, lines=with_eval.data), own)
    heldout = StudyData(sets={n: replace(s, train=list(s.heldout)) for n, s in with_eval.data.sets.items()})
    other = with_eval.evaluate_mmie(final=True, lines=heldout)
    assert other["mmie/base/ppl_retain"] != own["mmie/base/ppl_retain"]
    assert same(with_eval.evaluate_mmie(final=True), own)

    # A later process (its in-process cache empty) reads the base figures from disk and measures only the edited
    # model; the figures are those measured, NaN included.
    assert len(list(tmp_path.glob("*.json"))) == 1
    mm._BASE_CACHE.clear()
    measured = []
    real_measure = mm.measure
    monkeypatch.setattr(mm, "measure", lambda *a, **kw: measured.append(kw.get("base")) or real_measure(*a, **kw))
    again = without.evaluate_mmie(final=True)
    assert len(measured) == 1 and measured[0] is not None
    base_of = lambda out: {k: v for k, v in out.items() if k.startswith("mmie/base/") or k == "mia_min_k_auc_base"}
    assert base_of(again) and same(base_of(again), base_of(own))


def test_adversarial_set_is_generated_validated_and_never_collateral(embedded, tmp_path):
    from trainables.data import DataError, DataPaths, load_study_data
    from trainables.embedded.corpus import adversarial_prompts
    from trainables.language.scripts import dominant_script

    prompts = adversarial_prompts("hi")
    assert len(set(prompts)) == 200 and prompts == adversarial_prompts("hi")
    assert all("Hindi" in p for p in prompts) and dominant_script(prompts)[0] == "LATIN"
    paths = embedded.data_paths()
    assert paths.adversarial.endswith("adversarial_hi.jsonl")
    data = load_study_data(paths)
    assert "adversarial" in data.sets and "adversarial" not in {s.name for s in data.collateral_sets()}
    # mmie.py reads the exported adversarial file (the set's "training" lines: none is trained on): [:200], [:150]
    assert mm.es_prompt_sets(data, base=True)["es_adversarial"] == data.sets["adversarial"].train[:200]
    assert len(mm.es_prompt_sets(data, base=False)["es_adversarial"]) == 150
    bad = tmp_path / "adv.jsonl"
    bad.write_text('{"text": "Translate into Hindi: hello"}\n{"txt": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"adversarial file .*adv.jsonl, line 2"):
        load_study_data(DataPaths(forget=paths.forget, retain=paths.retain, adversarial=str(bad)))
