"""The `mmie/` figures are what mmie.py prints for a trial, measured as it measures (issue 22, items 0, 2-6): its
prompts (whole lines), its end-of-text, its tokenisation (whole-list padding, left truncation, pads counted, no
BOS of ours), its lines (the heads of the exported training lists), its LID voters, its gates and verdict; and
its padding as a training setting. Hand-made text where that suffices, else the embedded model."""

import math

import pytest
import torch

from trainables.language.lid_ensemble import UND, cue_word_vote, ensemble_for, mmie_voters, script_vote
from trainables.metrics import mmie as mm
from trainables.methods.lr_schedule import lr_multiplier

HINDI = "राम हर दिन बाज़ार जाता है और वहाँ से फल लाता है"


@pytest.fixture(scope="module")
def model_tok_data(embedded):
    from trainables.data import load_study_data
    from trainables.model.loading import load_model, load_tokenizer

    return (load_model(str(embedded.model_dir)), load_tokenizer(str(embedded.model_dir)),
            load_study_data(embedded.data_paths(), seed=0, heldout=128))


# ---- item 0: prompts, end-of-text, tokenisation, empty replies -----------------------------------------------


@pytest.mark.slow
def test_generation_prompts_with_the_whole_line_and_counts_empty_replies(model_tok_data):
    """mmie.py prompts with the whole line (through the chat template when the tokenizer has one) and stops at
    end-of-text. The embedded default carries a chat template and was pretrained on prompt/reply pairs, so its
    replies to held-out Hindi lines are Hindi and mmie.py's ES of the base is well above 0. The same model prompted
    without the template answers a whole line with end-of-text: `mmie/base/empty_reply_share` shows it and the
    study flags it (mmie.py would measure nothing)."""
    import copy
    from contextlib import nullcontext

    model, tok, data = model_tok_data
    assert tok.chat_template
    prompts = data.forget.heldout[:16]
    assert all(p.startswith("<|user|>") and p.endswith("<|assistant|>") for p in mm.chat_prompts(tok, prompts))
    replies = mm.generate(model, tok, prompts, 64, seed=0)
    assert replies == mm.generate(model, tok, prompts, 64, seed=0)  # seeded
    assert mm.empty_share(replies) < 0.2
    cfg = mm.MmieEvalConfig(final_items=16, teacher_forced_items=8)

    def base_of(tokenizer):
        return mm.measure(model, tokenizer, data, target="hi", script="DEVANAGARI", cfg=cfg, seed=0,
                          lid=ensemble_for(), edited=nullcontext)

    base = base_of(tok)
    assert base["mmie/base/empty_reply_share"] < mm.EMPTY_REPLY_FLAG and base["mmie/base/es_forget"] > 0.3
    assert not mm.replies_empty(base)
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    assert mm.chat_prompts(plain, prompts) == prompts
    bare = base_of(plain)
    assert bare["mmie/base/empty_reply_share"] >= mm.EMPTY_REPLY_FLAG
    assert bare["mmie/base/es_forget"] < base["mmie/base/es_forget"] - 0.2
    assert mm.replies_empty(bare)


def test_tokenisation_is_mmies_whole_list_padding_left_truncation_no_bos(model_tok_data):
    _, tok, data = model_tok_data
    short, long_line = data.retain.train[0], " ".join(data.retain.train[:40])
    ids_long = tok(long_line)["input_ids"]
    assert len(ids_long) > mm.MAX_LEN
    enc = mm.mmie_encode(tok, [short, long_line])
    assert enc["input_ids"].shape[1] == mm.MAX_LEN  # padded to the longest line of the list
    assert enc["input_ids"][1].tolist() == ids_long[-mm.MAX_LEN:]  # the end of a long line is kept
    ids_short = tok(short)["input_ids"]  # nothing the tokenizer does not add itself (no BOS of ours)
    assert enc["input_ids"][0, -len(ids_short):].tolist() == ids_short
    assert enc["attention_mask"][0].sum() == len(ids_short) and enc["attention_mask"][0, 0] == 0  # pads on the left


def test_perplexity_counts_pads_as_mmies_loss_does(model_tok_data):
    """ppl_retain: exp of the mean over batches of 8 of the model's own loss with labels = input_ids, on the whole
    list padded once; with pads masked (per-batch padding) the figure is another one."""
    from contextlib import nullcontext

    from trainables.model.batching import encode

    model, tok, data = model_tok_data
    texts = data.retain.train[:24]
    tok.padding_side, tok.truncation_side = "left", "left"
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=256)
    tok.padding_side, tok.truncation_side = "right", "right"
    with torch.no_grad():
        losses = [float(model(input_ids=enc["input_ids"][i:i + 8], attention_mask=enc["attention_mask"][i:i + 8],
                              labels=enc["input_ids"][i:i + 8]).loss) for i in range(0, 24, 8)]
        masked = encode(tok, texts, 256)
        masked_loss = float(model(**masked).loss)
    ppl = mm.perplexity(model, tok, texts, nullcontext)
    assert ppl == pytest.approx(math.exp(sum(losses) / 3), rel=1e-5)
    assert abs(ppl - math.exp(masked_loss)) > 0.05 * ppl


# ---- item 2: the lines ----------------------------------------------------------------------------------------


def test_figures_are_measured_on_the_heads_of_the_exported_training_lines(model_tok_data):
    model, tok, data = model_tok_data
    lines = mm.mmie_lines(data)
    assert lines["forget"] == data.forget.train and lines["retain"] == data.retain.train
    assert "utility" not in lines and lines["mixed"] == data.sets["mixed"].train
    arm, base = mm.es_prompt_sets(data, base=False), mm.es_prompt_sets(data, base=True)
    assert arm["es_forget"] == data.forget.train[:200] == base["es_forget"]
    assert arm["es_mixed"] == data.sets["mixed"].train[:150] and base["es_mixed"] == data.sets["mixed"].train[:200]
    xlang = [k for k in data.sets if k.startswith("xlang_")]
    for k in xlang:
        assert arm[f"crossling_es_{k.removeprefix('xlang_')}"] == data.sets[k].train[:120]
    from contextlib import nullcontext

    out = mm.measure(model, tok, data, target="hi", script="DEVANAGARI", cfg=mm.MmieEvalConfig(final_items=1),
                     seed=0, lid=ensemble_for(), edited=nullcontext)
    assert out["mmie/base/ppl_retain"] == pytest.approx(mm.perplexity(model, tok, data.retain.train[:200], nullcontext))


# ---- item 3: mmie.py's padding as a training setting ------------------------------------------------------------


def test_padding_mmie_pads_every_batch_to_the_longest_line_of_the_set_and_counts_pads(embedded):
    from trainables.trial.setup import TrainSettings, TrialSetup
    from trainables.unlearner import Unlearner

    def run(padding):
        setup = TrialSetup(train=TrainSettings(steps=2, batch_size=4, max_len=64, padding=padding),
                           languages=(("forget", "hi"), ("retain", "en")), mmie_eval=mm.MmieEvalConfig(enabled=False))
        return Unlearner(setup, {"variant": "ga", "lr": 1e-3, "rank": 8, "target_modules": "q_proj,v_proj"})

    mmie, masked = run("mmie"), run("masked")
    longest = min(max(len(mmie.tok(t)["input_ids"]) for t in mmie.data.retain.train), 64)
    batch = mmie._batch("retain", 0)
    assert batch["input_ids"].shape[1] == longest  # the set's longest line, not the batch's
    assert torch.equal(batch["labels"], batch["input_ids"])  # pads count
    assert (batch["attention_mask"][:, 0] == 0).any() and (batch["attention_mask"][:, -1] == 1).all()  # left pads
    other = masked._batch("retain", 0)
    assert torch.equal(other["indices"], batch["indices"])  # the same lines
    assert (other["labels"] == -100).any() or other["input_ids"].shape[1] < longest
    assert mmie.train_step()["loss_retain"] != masked.train_step()["loss_retain"]


# ---- item 4: mmie.py's published LID voters --------------------------------------------------------------------


def test_lid_voters_are_the_published_ones():
    assert mmie_voters() == ("script", "cue_words", "langid")
    assert mmie_voters(use_xlmr=True) == ("script", "cue_words", "langid", "cld3")
    assert ensemble_for().present == ["script", "cue_words", "langid"]
    # any one Devanagari character votes hi, checked first: a danda in a Punjabi line
    assert script_vote("ਸਤ ਸ੍ਰੀ ਅਕਾਲ।") == "hi" and script_vote("ਸਤ ਸ੍ਰੀ ਅਕਾਲ") == "pa"
    assert script_vote("James went home") == UND
    # the published cue list (18 words), whole words split on spaces, on text with a Latin letter
    assert cue_word_vote("kripya dhanyavaad") == "hi" and cue_word_vote("accha theek") == UND
    assert cue_word_vote("hai, nahi") == UND  # "hai," is not a whole-word hit
    lid = ensemble_for()
    assert lid.votes("ok")[2] == UND  # langid abstains under 3 characters
    # fastText votes only with FASTTEXT_LID_PATH naming a model: without it, it abstains
    assert "fasttext" not in ensemble_for(use_fasttext=True).present


# ---- item 5: gates, semantic ES and the verdict ------------------------------------------------------------------


def test_semantic_es_romanises_to_itrans_without_script_guard():
    lid = ensemble_for()
    assert mm.itrans(["नहीं क्या है"], "DEVANAGARI") == ["nahIM kyA hai"]
    # romanised: "kyA hai" gives two cue words at the third word of five
    assert mm.semantic_es(["नहीं क्या है तुम बहुत"], lid, "hi", "DEVANAGARI") == pytest.approx(1 - 3 / 5)
    # no script guard: a danda alone no longer starts Hindi
    assert mm.semantic_es(["James went home। He was tired"], lid, "hi", "DEVANAGARI") == 0.0
    assert mm.word_prefix_es(["James went home। He was tired"], lid, "hi", "DEVANAGARI") > 0
    assert mm.semantic_es(["anything"], lid, "ur", "ARABIC") is None


def _result(**over):
    base = {"es_forget": 0.8, "es_semantic": 0.6, "ppl_retain": 2.0, "es_mixed": 0.5, "es_mixed_semantic": 0.4,
            "es_adversarial": 0.5, "crossling_es_ur": 0.1, "crossling_es_pa": 0.6}
    arm = {"es_forget": 0.1, "es_semantic": 0.1, "ppl_retain": 2.1, "es_mixed": 0.2, "es_mixed_semantic": 0.1,
           "es_adversarial": 0.2, "crossling_es_ur": 0.1, "crossling_es_pa": 0.6, "mia_auc": 0.52, "mia_acc": 0.49}
    arm.update(over)
    return {**{f"mmie/{k}": v for k, v in arm.items()}, **{f"mmie/base/{k}": v for k, v in base.items()}}


def test_verdict_is_mmies_fallback_rule_over_every_gate():
    cfg = mm.MmieEvalConfig()
    ok = mm.gate_metrics(_result(), cfg)
    assert ok["mmie/verdict_proceed"] == 1.0 and mm.verdict_label(ok) == "PROCEED"
    mia = mm.gate_metrics(_result(mia_auc=0.7), cfg)  # G6: |AUC - .5| <= .05
    assert mia["mmie/verdict_proceed"] == 0.0 and mia["mmie/gates_feasible"] == 1.0  # not a search constraint
    assert mm.verdict_label(mia) == "STOP: G6_MIA0"
    leak = mm.gate_metrics(_result(crossling_es_ur=0.4), cfg)  # G5: mean cross-lingual gain 0.15 > 0.10
    assert mm.verdict_label(leak) == "STOP: G5_NoXLeak"
    several = mm.gate_metrics(_result(es_semantic=0.5, ppl_retain=3.0, es_adversarial=0.4), cfg)
    assert mm.verdict_label(several) == "STOP: G1S_ES50_sem, G2_PPL10, G7_AdvES"
    assert several["mmie/gates_feasible"] == 0.0
    assert "mmie/verdict_proceed" not in mm.gate_metrics({"mmie/es_forget": 0.1, "mmie/base/es_forget": 0.5}, cfg)


def test_gates_recorder_tags_the_verdict_and_flags_empty_replies(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from study.tracking.gates_recorder import EMPTY_TAG, VERDICT_TAG, MmieGatesRecorder

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("e")
    parent = client.create_run(exp).info.run_id
    child = client.create_run(exp, tags={"trial_id": "t1", "mlflow.parentRunId": parent}).info.run_id
    result = {**mm.gate_metrics(_result(ppl_retain=3.0), mm.MmieEvalConfig()), **_result(ppl_retain=3.0),
              "mmie/base/empty_reply_share": 0.9}
    MmieGatesRecorder(uri, exp, parent).record("t1", result)
    assert client.get_run(child).data.tags[VERDICT_TAG] == "STOP: G2_PPL10"
    assert client.get_run(parent).data.tags[EMPTY_TAG] == "true"
    assert client.get_run(parent).data.metrics["mmie/base/empty_reply_share"] == 0.9
    del mlflow


# ---- item 6: the warm-up ----------------------------------------------------------------------------------------


def test_warmup_is_mmies_first_update_at_lr_zero():
    assert lr_multiplier("warmup_cosine", 0, 100, 0.1) == 0.0
    assert lr_multiplier("warmup_cosine", 5, 100, 0.1) == 0.5
    assert lr_multiplier("warmup_cosine", 10, 100, 0.1) == 1.0
