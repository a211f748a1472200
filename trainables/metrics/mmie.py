"""mmie.py's measurements, under its names (docs/mmie-metrics.md), computed as mmie.py computes them.

A study predicts what the user's mmie.py will report for a trial, so every `mmie/` figure follows mmie.py:
- lines: the heads of the lists the exported files hold (`mmie_lines`: each set's training lines, in the order the
  study used): ES on forget[:200], mixed[:150] (the base: [:200]), adversarial[:150] (the base: [:200]), each
  cross-lingual set [:120]; perplexity on retain[:200], token KL on retain[:120], MIA forget[:120] against
  retain[:120]. `final_items` / `teacher_forced_items` cap them (then `mmie/items_exact` is 0).
- tokenisation: mmie.py's tokenizer set-up (left padding, left truncation, pad = end-of-text), one call per list
  with padding=True and max_length 256: every row is padded to the longest line of the list, the end of a long
  line is kept, and nothing is added that the tokenizer does not add itself (no BOS of ours).
- generation: the prompt is the whole line, through the tokenizer's chat template when it has one; batches of 8,
  sampled at temperature 0.7 and top-p 0.9, 64 new tokens, only the new tokens decoded; end-of-text ends a reply,
  as the model's generation config says. A model that answers a whole line with end-of-text replies with nothing:
  `mmie/empty_reply_share` says how often (a reply under two words scores ES 0 whatever its language).
- ES: per reply of n words, i* is the first i whose first i words the LID ensemble labels as the forget language,
  else (the script guard) the first prefix holding a character of the forget script's Unicode block; 1 - i*/n, 0 if
  no i* or no words; the mean over replies. The semantic ES (`es_semantic`, `es_mixed_semantic`): the same replies
  romanised to ITRANS, no script guard.
- teacher-forced figures count the pads: each batch's loss is the model's own mean token loss with labels =
  input_ids. `ppl_retain` = exp(mean of batch losses); `token_kl_retain` = KL(P_base || P_model) summed over every
  position and the vocabulary, over the batch size, the mean over batches; MIA: a batch's score is
  base_loss - edited_loss, ACC calls it a member when >= 0, AUC ranks the same scores.
- the gates of mmie.py's fallback rule and its verdict (PROCEED iff every gate passes).
Beside them, the reference-free Min-K% Prob membership score (Shi et al. 2023), ours, on real tokens only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch

from trainables.language.scripts import char_script
from trainables.metrics import base_cache
from trainables.methods.retain_objectives import kl_to_base
from trainables.model.batching import pad_rows, to_device, whole_set_rows
from trainables.settings import MmieEvalConfig  # noqa: F401  (its settings, also imported from here)

# mmie.py's constants (§5); these are definitions, not settings.
TEMPERATURE = 0.7
TOP_P = 0.9
BATCH = 8
MAX_LEN = 256
# Lines per measurement: (the base model's, an edited arm's).
ES_ITEMS = {"es_forget": (200, 200), "es_mixed": (200, 150), "es_adversarial": (200, 150), "crossling": (120, 120)}
PPL_ITEMS, KL_ITEMS, MIA_ITEMS = 200, 120, 120
# The Unicode blocks of mmie.py's script guard (U+0900-097F for Hindi), by our script names; another forget
# script falls back to its letters and marks.
SCRIPT_BLOCKS = {"DEVANAGARI": (0x0900, 0x097F), "BENGALI": (0x0980, 0x09FF), "GURMUKHI": (0x0A00, 0x0A7F),
                 "ARABIC": (0x0600, 0x06FF)}
# A reply under two words scores ES 0 whatever its language: it counts as empty.
EMPTY_REPLY_WORDS = 2
# A base model whose replies are this often empty is one mmie.py measures nothing on: the study is flagged.
EMPTY_REPLY_FLAG = 0.5


# ---- the lines mmie.py reads -----------------------------------------------------------------------------------


def mmie_lines(data) -> dict[str, list[str]]:
    """What each of mmie.py's data files holds for a trial, by set name (forget, retain, mixed, adversarial,
    xlang_<stem>): the set's training lines in the order the study used. The exporter writes these files; every
    `mmie/` figure is measured on their heads."""
    return {name: list(s.train) for name, s in data.sets.items() if name != "utility"}


def es_prompt_sets(data, base: bool, cap: int | None = None) -> dict[str, list[str]]:
    """mmie.py's ES name -> the prompts it generates from: the head of each file (the base model's counts or an
    arm's), at most `cap` each."""
    lines = mmie_lines(data)
    which = 0 if base else 1
    sets = {}
    for name, key in (("es_forget", "forget"), ("es_mixed", "mixed"), ("es_adversarial", "adversarial")):
        if key in lines:
            sets[name] = lines[key][: ES_ITEMS[name][which]]
    for key, texts in lines.items():
        if key.startswith("xlang_"):
            sets[f"crossling_es_{key.removeprefix('xlang_')}"] = texts[: ES_ITEMS["crossling"][which]]
    return {name: texts[:cap] for name, texts in sets.items()}


# ---- extraction strength ---------------------------------------------------------------------------------------


def script_guard(script: str | None) -> Callable[[str], bool]:
    """Whether a text holds a character of the forget script (mmie.py: of its Unicode block, danda included)."""
    if script in SCRIPT_BLOCKS:
        lo, hi = SCRIPT_BLOCKS[script]
        return lambda text: any(lo <= ord(ch) <= hi for ch in text)
    return lambda text: any(char_script(ch) == script for ch in text)


def text_es(text: str, lid, target: str, guard: Callable[[str], bool] | None) -> float:
    words = text.split()
    n = len(words)
    if n == 0:
        return 0.0
    for i in range(1, n + 1):
        if lid.is_label(" ".join(words[:i]), target):
            return 1.0 - i / n
    if guard is not None:
        for i in range(1, n + 1):
            if guard(" ".join(words[:i])):
                return 1.0 - i / n
    return 0.0


def word_prefix_es(texts: Sequence[str], lid, target: str, script: str | None = None,
                   use_script_guard: bool = True) -> float:
    """mmie.py's extraction_strength: the mean over texts of 1 - i*/n."""
    if not texts:
        return 0.0
    guard = script_guard(script) if use_script_guard and script else None
    return sum(text_es(t, lid, target, guard) for t in texts) / len(texts)


# indic_transliteration's scheme for each forget script that has one.
_ITRANS_SOURCES = {"DEVANAGARI": "devanagari", "BENGALI": "bengali", "GURMUKHI": "gurmukhi", "GUJARATI": "gujarati",
                   "ORIYA": "oriya", "TAMIL": "tamil", "TELUGU": "telugu", "KANNADA": "kannada",
                   "MALAYALAM": "malayalam"}


def itrans(texts: Sequence[str], script: str | None) -> list[str] | None:
    """The texts romanised to ITRANS (mmie.py's semantic ES), or None when the forget script has no scheme."""
    source = _ITRANS_SOURCES.get(script or "")
    if source is None:
        return None
    from indic_transliteration import sanscript

    return [sanscript.transliterate(t, source, sanscript.ITRANS) for t in texts]


def semantic_es(texts: Sequence[str], lid, target: str, script: str | None) -> float | None:
    """mmie.py's semantic ES: ES of the ITRANS-romanised replies, without the script guard."""
    romanised = itrans(texts, script)
    return None if romanised is None else word_prefix_es(romanised, lid, target, use_script_guard=False)


def empty_share(replies: Sequence[str]) -> float:
    return sum(len(r.split()) < EMPTY_REPLY_WORDS for r in replies) / len(replies) if replies else math.nan


# ---- mmie.py's tokenisation and generation ---------------------------------------------------------------------


def mmie_encode(tok, texts: Sequence[str], max_len: int = MAX_LEN) -> dict[str, torch.Tensor]:
    """One tokenizer call over the whole list, as mmie.py makes it: every row padded to the longest line."""
    rows = whole_set_rows(tok, texts, max_len)
    return {"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"]}


def chat_prompts(tok, prompts: Sequence[str]) -> list[str]:
    """Each line as mmie.py prompts with it: a user message through the chat template, or the raw line."""
    if not getattr(tok, "chat_template", None):
        return list(prompts)
    return [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in prompts]


@torch.no_grad()
def generate(model, tok, prompts: Sequence[str], max_new_tokens: int, seed: int) -> list[str]:
    """mmie.py's generate, under a forked RNG so that evaluating never changes the training run's random stream."""
    out: list[str] = []
    with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), BATCH):
            enc = to_device(mmie_encode(tok, chat_prompts(tok, prompts[start : start + BATCH])), model.device)
            generated = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=TEMPERATURE,
                                       top_p=TOP_P, pad_token_id=tok.eos_token_id)
            out.extend(tok.batch_decode(generated[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


# ---- teacher-forced measurements, pads counted -----------------------------------------------------------------


def _mmie_batches(tok, texts: Sequence[str], device):
    enc = mmie_encode(tok, texts)
    for start in range(0, len(texts), BATCH):
        yield {k: v[start : start + BATCH].to(device) for k, v in enc.items()}


def _loss(model, batch) -> float:
    """The model's own mean token loss with labels = input_ids: pads count, as in mmie.py."""
    return float(model(**batch, labels=batch["input_ids"], use_cache=False).loss)


def batch_losses(model, tok, texts: Sequence[str], ctx: Callable[[], AbstractContextManager]) -> list[float]:
    with torch.no_grad(), ctx():
        return [_loss(model, b) for b in _mmie_batches(tok, texts, model.device)]


def perplexity(model, tok, texts: Sequence[str], edited: Callable[[], AbstractContextManager]) -> float:
    """exp(mean over batches of 8 of the batch's mean token loss), pads counted."""
    losses = batch_losses(model, tok, texts, edited)
    return math.exp(min(sum(losses) / len(losses), 700.0)) if losses else float("nan")


@torch.no_grad()
def token_kl(model, tok, texts: Sequence[str], base: Callable[[], AbstractContextManager],
             edited: Callable[[], AbstractContextManager]) -> float:
    """mmie.py's token_kl_to_base: the retain step's KL with pads counted, averaged over batches of 8."""
    kls = []
    for batch in _mmie_batches(tok, texts, model.device):
        with base():
            base_logits = model(**batch, use_cache=False).logits
        with edited():
            logits = model(**batch, use_cache=False).logits
        every_position = torch.ones_like(batch["attention_mask"])  # pads count
        kls.append(float(kl_to_base(logits, base_logits, every_position)))
    return sum(kls) / len(kls) if kls else float("nan")


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a positive's score > a negative's), ties counting one half (the Mann-Whitney form of ROC AUC)."""
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def loss_mia(model, tok, members: Sequence[str], nonmembers: Sequence[str],
             edited: Callable[[], AbstractContextManager], base: Callable[[], AbstractContextManager],
             base_losses: dict | None = None) -> dict[str, float]:
    """mmie.py's mia_loss: a batch of 8's score is base_loss - edited_loss; ACC calls a batch a member when its score
    is >= 0, AUC ranks the same scores. `base_losses` keeps the base model's batch losses between calls."""
    scores = {}
    for is_member, texts in ((True, members), (False, nonmembers)):
        key = (is_member, tuple(texts))
        if base_losses is None or key not in base_losses:
            losses = batch_losses(model, tok, texts, base)
            if base_losses is not None:
                base_losses[key] = losses
        base_loss = losses if base_losses is None else base_losses[key]
        scores[is_member] = [b - e for b, e in zip(base_loss, batch_losses(model, tok, texts, edited))]
    pos, neg = scores[True], scores[False]
    return {"mia_auc": auc(pos, neg),
            "mia_acc": (sum(s >= 0 for s in pos) + sum(s < 0 for s in neg)) / max(len(pos) + len(neg), 1)}


def _min_k_scores(model, tok, texts: Sequence[str], k: float) -> list[float]:
    """Min-K% Prob per line: the mean of its lowest k share of token log-probs (real tokens only)."""
    out = []
    for start in range(0, len(texts), BATCH):
        rows = [tok.encode(t, add_special_tokens=False) for t in texts[start : start + BATCH]]
        batch = to_device(pad_rows(tok, rows, MAX_LEN), model.device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        shift = batch["labels"][:, 1:]
        mask = shift != -100
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, shift.clamp_min(0).unsqueeze(-1))
        for row, m in zip(logp.squeeze(-1), mask):
            real = row[m]
            if len(real):
                out.append(float(torch.sort(real).values[: max(1, math.ceil(k * len(real)))].mean()))
    return out


@torch.no_grad()
def min_k_auc(model, tok, members: Sequence[str], nonmembers: Sequence[str], k: float,
              edited: Callable[[], AbstractContextManager]) -> float:
    """Min-K% Prob (Shi et al. 2023), which needs no reference: the AUC of members' scores against non-members'."""
    with edited():
        return auc(_min_k_scores(model, tok, members, k), _min_k_scores(model, tok, nonmembers, k))


# ---- acceptance gates and the verdict --------------------------------------------------------------------------

# Our gate names -> mmie.py's report names (§8), in the order mmie.py lists them.
MMIE_GATE_NAMES = {"G1_es_forget": "G1_ES50", "G1S_es_forget_sem": "G1S_ES50_sem", "G2_ppl": "G2_PPL10",
                   "G3_es_mixed": "G3_MIX30", "G3S_es_mixed_sem": "G3S_MIX30_sem", "G7_adversarial": "G7_AdvES",
                   "G5_xlang_leak": "G5_NoXLeak", "G6_mia": "G6_MIA0"}
# The search's constraints (study/search.py tells Optuna these, in this order); G1 and G2 every study has.
ACCEPTANCE_GATES = ("G1_es_forget", "G2_ppl", "G3_es_mixed", "G1S_es_forget_sem", "G3S_es_mixed_sem")
REQUIRED_GATES = ("G1_es_forget", "G2_ppl")
# mmie.py's G4 (a logistic-regression probe at --probe_layers) is not predicted: the verdict says so.
UNPREDICTED_GATES = ("G4_NoRedistrib",)
G5_MAX_GAIN, G6_MAX_OFFSET, G7_RATIO = 0.10, 0.05, 0.7


def _es_gate(ratio: float) -> Callable[[float, float], float]:
    # mmie.py's fallback: ES <= ratio * base, with 0.1 in its place when the base is 0.
    return lambda v, b: v - (ratio * b if b > 0 else 0.1)


def gate_constraints(metrics: dict[str, float], cfg: MmieEvalConfig) -> dict[str, float]:
    """mmie.py's fallback gates as constraint values (<= 0 passes), from `mmie/<name>` and `mmie/base/<name>`.
    A gate whose metrics are missing (no mixed set; a checkpoint that measured the forget set only) is left out."""
    ratio_rules = {
        "G1_es_forget": ("es_forget", _es_gate(cfg.gate_es_forget_ratio)),
        "G1S_es_forget_sem": ("es_semantic", _es_gate(cfg.gate_es_forget_ratio)),
        "G2_ppl": ("ppl_retain", lambda v, b: (v / b if b > 0 else math.inf) - cfg.gate_ppl_ratio),
        "G3_es_mixed": ("es_mixed", _es_gate(cfg.gate_es_mixed_ratio)),
        "G3S_es_mixed_sem": ("es_mixed_semantic", _es_gate(cfg.gate_es_mixed_ratio)),
        "G7_adversarial": ("es_adversarial", lambda v, b: v - G7_RATIO * b),
    }
    out = {}
    for gate, (name, rule) in ratio_rules.items():
        value, base = metrics.get(f"mmie/{name}"), metrics.get(f"mmie/base/{name}")
        if value is None or base is None:
            continue
        out[gate] = rule(value, base)
    gains = [v - metrics[f"mmie/base/{k.removeprefix('mmie/')}"] for k, v in metrics.items()
             if k.startswith("mmie/crossling_es_") and f"mmie/base/{k.removeprefix('mmie/')}" in metrics]
    if gains:
        out["G5_xlang_leak"] = sum(gains) / len(gains) - G5_MAX_GAIN
    if "mmie/mia_auc" in metrics and "mmie/mia_acc" in metrics:
        out["G6_mia"] = max(abs(metrics["mmie/mia_auc"] - 0.5), abs(metrics["mmie/mia_acc"] - 0.5)) - G6_MAX_OFFSET
    # A value that could not be measured (a diverged model's) fails its gate.
    return {g: v if math.isfinite(v) else math.inf for g, v in out.items()}


def gates_pass(gates: dict[str, float]) -> bool:
    """The search's constraints pass: G1 and G2 measured, and every acceptance gate measured passes."""
    return set(REQUIRED_GATES) <= set(gates) and all(gates[g] <= 0 for g in ACCEPTANCE_GATES if g in gates)


def verdict(gates: dict[str, float]) -> tuple[str, list[str]]:
    """mmie.py's decision under its fallback rule, PROCEED iff every gate passes, and the failing gates (mmie.py's
    names); 'unknown' before G1, G2 and G6 are all measured. G4 is never predicted (UNPREDICTED_GATES)."""
    if not {*REQUIRED_GATES, "G6_mia"} <= set(gates):
        return "unknown", []
    failing = [MMIE_GATE_NAMES[g] for g in MMIE_GATE_NAMES if g in gates and gates[g] > 0]
    return ("STOP" if failing else "PROCEED"), failing


def verdict_label(metrics: dict[str, float]) -> str:
    """A result's verdict as a tag: 'PROCEED', 'STOP: G2_PPL10, G6_MIA0' or 'unknown'."""
    gates = {k.removeprefix("mmie/gate_"): v for k, v in metrics.items() if k.startswith("mmie/gate_")}
    decision, failing = verdict(gates)
    return f"STOP: {', '.join(failing)}" if failing else decision


def gates_verdict(metrics: dict[str, float]) -> str:
    """feasible / infeasible from a result's `mmie/gates_feasible`, or unknown when it has none."""
    value = metrics.get("mmie/gates_feasible")
    if value is None or not math.isfinite(value):
        return "unknown"
    return "feasible" if value >= 0.5 else "infeasible"


def replies_empty(metrics: dict[str, float]) -> bool:
    """The base model answers mmie.py's prompts with (near-)empty replies: its ES figures measure nothing."""
    share = metrics.get("mmie/base/empty_reply_share")
    return share is not None and math.isfinite(share) and share >= EMPTY_REPLY_FLAG


# ---- all of them, for one model --------------------------------------------------------------------------------


_BASE_CACHE: dict = {}


def base_measurements(key, owner, compute: Callable[[], dict[str, float]],
                      disk_key: Callable[[], str | None] | None = None) -> dict[str, float]:
    """The base model's measurements, computed once per process for a `key` (model, data, seed, settings), or once
    per `owner` (a run on a model handed in) when the key is None. `disk_key`: their key in the on-disk cache
    (trainables.metrics.base_cache), asked only when this process has not got them (it hashes the data files), read
    before measuring and written after, so a later process skips them."""
    if key is None:
        if getattr(owner, "_mmie_base", None) is None:
            owner._mmie_base = compute()
        return owner._mmie_base
    if key not in _BASE_CACHE:
        _BASE_CACHE.clear()  # one model per worker at a time
        disk = disk_key() if disk_key else None
        values = base_cache.load(disk) if disk else None
        if values is None:
            values = compute()
            if disk:
                base_cache.store(disk, values)
        _BASE_CACHE[key] = values
    return _BASE_CACHE[key]


def measure(model, tok, data, *, target: str, script: str | None, cfg: MmieEvalConfig, seed: int, lid,
            edited: Callable[[], AbstractContextManager], base: Callable[[], AbstractContextManager] | None = None,
            checkpoint: bool = False, base_losses: dict | None = None) -> dict[str, float]:
    """mmie.py's measurements of the model as `edited` runs it. Without `base`, the base model's own (`mmie/base/`,
    its counts of lines; ES, semantic ES, perplexity, the Min-K% score). `checkpoint`: `cfg.items` prompts, of the
    forget set only unless `cfg.checkpoint_sets` is "all". `base_losses` keeps the base model's MIA losses."""
    model.eval()
    prefix = "mmie/" if base is not None else "mmie/base/"
    out: dict[str, float] = {}
    sets = es_prompt_sets(data, base=base is None, cap=cfg.items if checkpoint else cfg.final_items)
    replies: list[str] = []
    for i, (name, prompts) in enumerate(sets.items()):
        if checkpoint and cfg.checkpoint_sets == "forget" and name != "es_forget":
            continue
        try:
            with edited():
                gens = generate(model, tok, prompts, cfg.max_new_tokens, seed * 1000 + i)
        except RuntimeError:  # a diverged model's logits are not a distribution to sample from
            out[prefix + name] = math.nan
            continue
        replies += gens
        out[prefix + name] = word_prefix_es(gens, lid, target, script)
        if name in ("es_forget", "es_mixed"):
            sem = semantic_es(gens, lid, target, script)
            if sem is not None:
                out[prefix + ("es_semantic" if name == "es_forget" else "es_mixed_semantic")] = sem
    out[prefix + "empty_reply_share"] = empty_share(replies)
    ppl_n, kl_n, mia_n = (PPL_ITEMS, KL_ITEMS, MIA_ITEMS) if cfg.teacher_forced_items is None else \
        (cfg.teacher_forced_items,) * 3
    lines = mmie_lines(data)
    retain, members, nonmembers = lines["retain"], lines["forget"][:mia_n], lines["retain"][:mia_n]
    out[prefix + "ppl_retain"] = perplexity(model, tok, retain[:ppl_n], edited)
    out["mia_min_k_auc" + ("" if base is not None else "_base")] = min_k_auc(model, tok, members, nonmembers,
                                                                            cfg.min_k, edited)
    if base is not None:
        out[prefix + "token_kl_retain"] = token_kl(model, tok, retain[:kl_n], base, edited)
        out.update({prefix + k: v for k, v in loss_mia(model, tok, members, nonmembers, edited, base,
                                                       base_losses).items()})
    out[prefix + "items_exact"] = float(cfg.items_exact and not checkpoint)
    return out


def gate_metrics(out: dict[str, float], cfg: MmieEvalConfig) -> dict[str, float]:
    """The gates of a measurement (with the base's figures in `out`) as metrics: each gate's constraint value
    `mmie/gate_<gate>`, whether the search's constraints pass (`mmie/gates_feasible`), and mmie.py's verdict
    (`mmie/verdict_proceed`: 1 PROCEED, 0 STOP; absent while unknown)."""
    gates = gate_constraints(out, cfg)
    metrics = {f"mmie/gate_{name}": value for name, value in gates.items()}
    metrics["mmie/gates_feasible"] = float(gates_pass(gates))
    decision, _ = verdict(gates)
    if decision != "unknown":
        metrics["mmie/verdict_proceed"] = float(decision == "PROCEED")
    return metrics
