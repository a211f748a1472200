"""Degenerate output is not forgetting: models made degenerate on purpose, with real peft LoRAs trained a few dozen
steps on the embedded model, one to emit a single token after forget prompts, one to emit Latin gibberish. Their
real metrics (the Unlearner's own evaluation) make them look like strong forgetting (high forget_efficacy, utility
kept); the `degenerate` flag catches both, and the real front code (live and read back) keeps them off the front,
while an ordinary unlearning run is not flagged."""

import random

import pytest
import torch
from conftest import run_steps

from study.eligibility import FrontRule
from study.pareto import pareto_front_mask
from study.results.front import StudyRecord, TrialRecord, front_table
from study.tracking.front_recorder import ParetoRecorder
from trainables.data import prompt_prefix
from trainables.metrics.core import token_nll
from trainables.model.batching import pad_rows, to_device
from trainables.trial.setup import TrainSettings, TrialSetup
from trainables.unlearner import Unlearner

LANGUAGES = (("forget", "hi"), ("retain", "en"), ("mixed", "hi"), ("xlang_ur", "ur"), ("xlang_pa", "pa"),
             ("xlang_bn", "bn"), ("utility", "en"))
OBJECTIVES = ("forget_efficacy", "utility", "xlang_utility")
PROMPTS = 32


def _gibberish(rng: random.Random, n_words: int = 8) -> str:
    return " ".join("".join(rng.choice("qxzkvjwbfgtpdm") + rng.choice("aeiouy") for _ in range(rng.randint(2, 4)))
                    for _ in range(n_words))


def _teach(unlearner: Unlearner, continuation, steps: int = 40, lr: float = 5e-3) -> None:
    """Train the run's LoRA (real peft) to follow every forget prompt with `continuation(i)` (token ids), while
    keeping retain lines as they were (their NLL): a broken model that still looks healthy on English."""
    tok, model = unlearner.tok, unlearner.model
    forget, retain = unlearner.data.forget.train, unlearner.data.retain.train
    opt = torch.optim.AdamW(unlearner.adapter.parameters(), lr=lr)
    rng = random.Random(0)
    model.train()
    for _ in range(steps):
        rows, starts = [], []
        for i in rng.sample(range(len(forget)), 16):
            prompt = tok.encode(prompt_prefix(forget[i]), add_special_tokens=False)
            rows.append(prompt + continuation(i))
            starts.append(len(prompt) + 1)  # + the BOS pad_rows puts first
        batch = pad_rows(tok, rows, 64)
        for r, start in enumerate(starts):
            batch["labels"][r, :start] = -100
        keep = pad_rows(tok, [tok.encode(line, add_special_tokens=False) for line in rng.sample(retain, 16)], 64)
        loss = 0.0
        for b in (batch, keep):
            b = to_device(b, model.device)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False).logits
            total, count = token_nll(logits, b["labels"])
            loss = loss + total.sum() / count.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _measure(unlearner: Unlearner) -> dict:
    metrics = unlearner.evaluate_step()
    metrics.update(unlearner.evaluate_full(PROMPTS))
    return metrics


@pytest.fixture(scope="module")
def runs(embedded):
    torch.set_num_threads(1)
    setup = TrialSetup(train=TrainSettings(steps=30, es_prompts=PROMPTS), languages=LANGUAGES)
    out = {}
    base = Unlearner(setup, {"variant": "ga", "lr": 1e-3})
    out["base"] = _measure(base)  # no update yet: the base model itself
    run_steps(base, 30)
    out["ga"] = _measure(base)  # ordinary gradient ascent with retain steps: damaged, not degenerate

    one = Unlearner(setup, {"variant": "ga", "lr": 1e-3})
    danda = one.tok.encode("।", add_special_tokens=False)[0]
    _teach(one, lambda i: [danda] * 16)
    out["one_token"] = _measure(one)

    babble = Unlearner(setup, {"variant": "ga", "lr": 1e-3})
    _teach(babble, lambda i: babble.tok.encode(" " + _gibberish(random.Random(i)), add_special_tokens=False))
    out["gibberish"] = _measure(babble)
    return out


@pytest.mark.slow
def test_models_made_degenerate_look_like_forgetting_but_are_flagged(runs):
    for name in ("one_token", "gibberish"):
        m = runs[name]
        # what the forget measures alone would credit: the forget language is gone and English is kept
        assert m["forget_efficacy"] > 0.5 and m["es_forget"] < 0.2 and m["utility"] > 0.8, (name, m)
        assert m["degenerate"] == 1.0, (name, runs[name])
    assert runs["one_token"]["es_none"] > 0.5  # language ID finds no language in a row of dandas
    assert runs["gibberish"]["es_retain_language"] > 0.5  # ... and reads Latin gibberish as English,
    assert runs["gibberish"]["forget_cont_nll_ratio"] > 2.5  # which the base model finds nothing like text
    assert runs["base"]["degenerate"] == 0.0
    assert runs["ga"]["degenerate"] == 0.0, {k: v for k, v in runs["ga"].items() if "cont" in k or k.startswith("es_")
                                             or k in ("forget_entropy", "forget_efficacy", "utility")}


@pytest.mark.slow
def test_degenerate_models_never_land_on_the_front(runs):
    names = list(runs)
    everything = FrontRule(OBJECTIVES, include_degenerate=True)
    points = [[runs[n][o] for o in OBJECTIVES] for n in names]
    front = {n for n, on in zip(names, pareto_front_mask(points)) if on}
    assert {"one_token", "gibberish"} & front  # without the flag, a degenerate model would be on the front

    recorder = ParetoRecorder("", "", "", FrontRule(tuple(OBJECTIVES)))  # the live front, on the real results
    for n in names:
        recorder.record_result({**runs[n], "trial_id": n, "finished": 1.0, "diverged": 0.0}, {"variant": "ga"}, False)
    front, excluded = recorder.front()
    assert {r["trial_id"] for r in front.items} == {"base", "ga"}
    assert {r["trial_id"]: r["excluded"] for r in excluded} == {"one_token": "degenerate", "gibberish": "degenerate"}

    record = StudyRecord(study="s", tracking_uri="", parent_run_id="p", objectives=list(OBJECTIVES), steps=30,
                         seed=0, config={"utility_floor": "None"},
                         trials=[TrialRecord(n, n, "completed", {"variant": "ga"}, runs[n], False, None) for n in names])
    shown = {r["trial_id"] for r in front_table(record)}  # the read-back front (and so export's picks)
    assert shown and not shown & {"one_token", "gibberish"}
    assert {t.trial_id for t in record.trials if everything.ranks(t.status, t.metrics)} == set(names)
