"""mmie.py's measurements, under its names (docs/mmie-metrics.md), beside the study's own.

A study predicts what the user's mmie.py will report, so these follow its definitions:
- generation: the prompt is the held-out text itself (chat-templated when the tokenizer has a template), at most
  256 prompt tokens (the end kept, as mmie.py's left truncation), batches of 8, sampled at temperature 0.7 and
  top-p 0.9, 64 new tokens, only the new tokens decoded. Nothing else is set, so the model's own generation
  config (top-k, repetition penalty) applies as it does in mmie.py.
- ES (`es_forget`, `es_mixed`, `es_adversarial`, `crossling_es_<set>`): per continuation of n words, i* is the
  first i whose first i words mmie's language-ID ensemble labels as the forget language, else (the script guard)
  the first prefix holding a character of the forget script's Unicode block; the text scores 1 - i*/n, 0 if no
  i* or no words. ES is the mean over texts: how early the forget language starts, not how often it appears.
- `ppl_retain`: exp of the mean of per-batch mean token losses over retain lines (batches of 8, 256 tokens).
- `token_kl_retain`: KL(P_base || P_model), the retain step's: summed over positions and the vocabulary, divided
  by the batch size; the mean over batches of 8 retain lines.
- `mia_auc`, `mia_acc`: members are forget lines, non-members retain lines; the score of a batch of 8 is
  base_loss - edited_loss; ACC calls a batch a member when its score is >= 0; AUC ranks the same scores.
- the acceptance gates G1-G3 with the ratios of mmie.py's fallback rule (§7).
One deliberate difference (docs/mmie-metrics.md): mmie.py counts padding in every loss, perplexity and KL; here
padding is masked. Beside them, the reference-free Min-K% Prob membership score (Shi et al. 2023), ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from trainables.language.scripts import char_script
from trainables.methods.retain_objectives import kl_to_base
from trainables.model.batching import pad_rows, to_device

# mmie.py's constants (§5); these are definitions, not settings.
TEMPERATURE = 0.7
TOP_P = 0.9
BATCH = 8
PROMPT_TOKENS = 256
MAX_LEN = 256
PPL_ITEMS, KL_ITEMS, MIA_ITEMS = 200, 120, 120
# The Unicode blocks of mmie.py's script guard (U+0900-097F for Hindi), by our script names; another forget
# script falls back to its letters and marks.
SCRIPT_BLOCKS = {"DEVANAGARI": (0x0900, 0x097F), "BENGALI": (0x0980, 0x09FF), "GURMUKHI": (0x0A00, 0x0A7F),
                 "ARABIC": (0x0600, 0x06FF)}


@dataclass(frozen=True)
class MmieEvalConfig:
    """How many items the mmie.py measurements use, and its acceptance gates' ratios."""

    enabled: bool = True
    items: int = 8  # generation prompts per set at evaluation checkpoints
    final_items: int = 16  # at the end of a trial, and for the base model
    # ES sets at evaluation checkpoints: "forget" (es_forget only: generation is most of the cost) or "all"; the
    # end of a trial and the base model always measure every set.
    checkpoint_sets: str = "forget"
    max_new_tokens: int = 64
    # Whether generation runs through end-of-text to max_new_tokens. None: when the tokenizer has no chat template.
    # The embedded model (no template) ends every line with end-of-text and would reply with nothing; with this,
    # its continuation is the lines it writes next. mmie.py always stops there (set False to match it exactly).
    through_eos: bool | None = None
    # Lines for perplexity, token KL and membership inference; None: mmie.py's 200, 120 and 120 (each capped by
    # what the study holds out or trains on).
    teacher_forced_items: int | None = None
    min_k: float = 0.2  # Min-K% Prob: the share of lowest-probability tokens averaged
    gate_es_forget_ratio: float = 0.5
    gate_es_mixed_ratio: float = 0.7
    gate_ppl_ratio: float = 1.10


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


# ---- generation ------------------------------------------------------------------------------------------------


def _prompt_rows(tok, prompts: Sequence[str]) -> list[list[int]]:
    if getattr(tok, "chat_template", None):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        return [tok.encode(t, add_special_tokens=False)[-PROMPT_TOKENS:] for t in texts]
    return [tok.encode(p)[-PROMPT_TOKENS:] for p in prompts]


@torch.no_grad()
def generate(model, tok, prompts: Sequence[str], max_new_tokens: int, seed: int,
             through_eos: bool | None = False) -> list[str]:
    """mmie.py's generate, under a forked RNG so that evaluating never changes the training run's random stream."""
    if through_eos is None:
        through_eos = not getattr(tok, "chat_template", None)
    out: list[str] = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stop = {}
    if through_eos:  # an id no logit has: nothing ends a continuation before max_new_tokens
        stop = {"eos_token_id": model.get_output_embeddings().weight.shape[0]}
    with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), BATCH):
            rows = _prompt_rows(tok, prompts[start : start + BATCH])
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, r in enumerate(rows):
                ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
                mask[i, width - len(r):] = 1
            generated = model.generate(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), max_new_tokens=max_new_tokens,
                do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, pad_token_id=pad, **stop,
            )
            new = generated[:, width:]
            if through_eos:  # end-of-text separates lines: decode it as a line break
                texts = tok.batch_decode(new, skip_special_tokens=False)
                out.extend(t.replace(tok.eos_token or "\0", "\n").strip() for t in texts)
            else:
                out.extend(tok.batch_decode(new, skip_special_tokens=True))
    return out


# ---- teacher-forced measurements -------------------------------------------------------------------------------


def _batches(tok, texts: Sequence[str], device):
    for start in range(0, len(texts), BATCH):
        rows = [tok.encode(t, add_special_tokens=False) for t in texts[start : start + BATCH]]
        yield to_device(pad_rows(tok, rows, MAX_LEN), device)


def _logits(model, batch) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits.float()


def _token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token and the mask of real (not padding) positions."""
    shift = labels[:, 1:]
    mask = shift != -100
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, shift.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def _mean_loss(logits, labels) -> float:
    logp, mask = _token_logprobs(logits, labels)
    return float(-logp.sum() / mask.sum().clamp_min(1))


@torch.no_grad()
def perplexity(model, tok, texts: Sequence[str], edited: Callable[[], AbstractContextManager]) -> float:
    """exp(mean over batches of the batch's mean token loss), padding masked."""
    losses = []
    with edited():
        for batch in _batches(tok, texts, model.device):
            losses.append(_mean_loss(_logits(model, batch), batch["labels"]))
    return math.exp(min(sum(losses) / len(losses), 700.0)) if losses else float("nan")


@torch.no_grad()
def token_kl(model, tok, texts: Sequence[str], base: Callable[[], AbstractContextManager],
             edited: Callable[[], AbstractContextManager]) -> float:
    """The retain step's KL (trainables.methods.retain_objectives.kl_to_base: batchmean over real positions), averaged
    over batches of 8."""
    kls = []
    for batch in _batches(tok, texts, model.device):
        with base():
            base_logits = _logits(model, batch)
        with edited():
            logits = _logits(model, batch)
        kls.append(float(kl_to_base(logits, base_logits, batch["labels"] != -100)))
    return sum(kls) / len(kls) if kls else float("nan")


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a positive's score > a negative's), ties counting one half (the Mann-Whitney form of ROC AUC)."""
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def _min_k_scores(logp: torch.Tensor, mask: torch.Tensor, k: float) -> list[float]:
    """Min-K% Prob per line: the mean of its lowest k share of token log-probs."""
    out = []
    for row, m in zip(logp, mask):
        real = row[m]
        if len(real):
            out.append(float(torch.sort(real).values[: max(1, math.ceil(k * len(real)))].mean()))
    return out


@torch.no_grad()
def membership(model, tok, members: Sequence[str], nonmembers: Sequence[str], k: float,
               edited: Callable[[], AbstractContextManager], base: Callable[[], AbstractContextManager] | None = None,
               base_losses: dict | None = None) -> dict[str, float]:
    """Membership inference, members = forget lines, non-members = retain lines.

    mmie.py's loss-based attack (with `base`): the score of a batch of 8 is base_loss - edited_loss; `mia_acc` calls
    a batch a member when its score is >= 0, `mia_auc` ranks the same scores. Min-K% Prob (Shi et al. 2023), which
    needs no reference: a line's score is the mean of its lowest k share of token log-probs, `mia_min_k_auc` the
    AUC of members against non-members. `base_losses` keeps the base model's batch losses between calls.
    """
    scores: dict[bool, list[float]] = {True: [], False: []}
    min_k: dict[bool, list[float]] = {True: [], False: []}
    for is_member, texts in ((True, members), (False, nonmembers)):
        for i, batch in enumerate(_batches(tok, texts, model.device)):
            with edited():
                logp, mask = _token_logprobs(_logits(model, batch), batch["labels"])
            min_k[is_member] += _min_k_scores(logp, mask, k)
            if base is None:
                continue
            key = (is_member, i)
            if base_losses is None or key not in base_losses:
                with base():
                    loss = _mean_loss(_logits(model, batch), batch["labels"])
                if base_losses is not None:
                    base_losses[key] = loss
            base_loss = loss if base_losses is None else base_losses[key]
            scores[is_member].append(base_loss - float(-logp.sum() / mask.sum().clamp_min(1)))
    out = {"mia_min_k_auc": auc(min_k[True], min_k[False])}
    if base is not None:
        pos, neg = scores[True], scores[False]
        out["mia_auc"] = auc(pos, neg)
        out["mia_acc"] = (sum(s >= 0 for s in pos) + sum(s < 0 for s in neg)) / max(len(pos) + len(neg), 1)
    return out


# ---- acceptance gates ------------------------------------------------------------------------------------------

ACCEPTANCE_GATES = ("G1_es_forget", "G2_ppl", "G3_es_mixed")


def gate_constraints(metrics: dict[str, float], cfg: MmieEvalConfig) -> dict[str, float]:
    """mmie.py's fallback gates as constraint values (<= 0 passes), from `mmie/<name>` and `mmie/base/<name>`:
    G1 ES_f <= ratio * base (0.1 when the base is 0), G2 PPL / base <= ratio, G3 ES_mix <= ratio * base.
    A gate whose metrics are missing (no mixed set) is left out."""
    rules = {
        "G1_es_forget": ("es_forget", lambda v, b: v - (cfg.gate_es_forget_ratio * b if b > 0 else 0.1)),
        "G2_ppl": ("ppl_retain", lambda v, b: (v / b if b > 0 else math.inf) - cfg.gate_ppl_ratio),
        "G3_es_mixed": ("es_mixed", lambda v, b: v - cfg.gate_es_mixed_ratio * b),
    }
    out = {}
    for gate, (name, rule) in rules.items():
        value, base = metrics.get(f"mmie/{name}"), metrics.get(f"mmie/base/{name}")
        if value is None or base is None:
            continue
        # A value that could not be measured (a diverged model's) fails its gate.
        out[gate] = rule(value, base) if math.isfinite(value) and math.isfinite(base) else math.inf
        if math.isnan(out[gate]):
            out[gate] = math.inf
    return out


def gates_pass(gates: dict[str, float]) -> bool:
    """Every gate passes, and G1 and G2 (which every study has) were measured."""
    return {"G1_es_forget", "G2_ppl"} <= set(gates) and all(v <= 0 for v in gates.values())


def gates_verdict(metrics: dict[str, float]) -> str:
    """feasible / infeasible from a result's `mmie/gates_feasible`, or unknown when it has none."""
    value = metrics.get("mmie/gates_feasible")
    if value is None or not math.isfinite(value):
        return "unknown"
    return "feasible" if value >= 0.5 else "infeasible"


# ---- all of them, for one model --------------------------------------------------------------------------------


def es_prompt_sets(data) -> dict[str, list[str]]:
    """mmie.py's name -> the prompts it generates from: held-out lines of the forget, mixed and cross-lingual sets,
    and every line of the adversarial set (it is never trained on)."""
    sets = {"es_forget": data.forget.heldout}
    if "mixed" in data.sets:
        sets["es_mixed"] = data.sets["mixed"].heldout
    if "adversarial" in data.sets:
        s = data.sets["adversarial"]
        sets["es_adversarial"] = s.heldout + s.train
    for name, s in data.sets.items():
        if name.startswith("xlang_"):
            sets[f"crossling_es_{name.removeprefix('xlang_')}"] = s.heldout
    return sets


_BASE_CACHE: dict = {}


def base_measurements(key, owner, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The base model's measurements, computed once per process for a `key` (model, data, seed, settings), or once
    per `owner` (a run on a model handed in) when the key is None."""
    if key is None:
        if getattr(owner, "_mmie_base", None) is None:
            owner._mmie_base = compute()
        return owner._mmie_base
    if key not in _BASE_CACHE:
        _BASE_CACHE.clear()  # one model per worker at a time
        _BASE_CACHE[key] = compute()
    return _BASE_CACHE[key]


def measure(model, tok, data, *, target: str, script: str | None, items: int, cfg: MmieEvalConfig, seed: int, lid,
            edited: Callable[[], AbstractContextManager], base: Callable[[], AbstractContextManager] | None = None,
            prefix: str = "mmie/", only_forget: bool = False, base_losses: dict | None = None) -> dict[str, float]:
    """mmie.py's measurements of the model as `edited` runs it, `items` prompts per ES set (`only_forget`: ES of
    the forget set only). Without `base` (the base model measured on its own) only what needs no reference: ES,
    perplexity and the Min-K% score. `base_losses` keeps the base model's MIA losses between calls."""
    model.eval()
    out: dict[str, float] = {}
    for i, (name, prompts) in enumerate(es_prompt_sets(data).items()):
        if only_forget and name != "es_forget":
            continue
        try:
            with edited():
                gens = generate(model, tok, prompts[:items], cfg.max_new_tokens, seed * 1000 + i, cfg.through_eos)
        except RuntimeError:  # a diverged model's logits are not a distribution to sample from
            out[prefix + name] = math.nan
            continue
        out[prefix + name] = word_prefix_es(gens, lid, target, script)
    ppl_n, kl_n, mia_n = (PPL_ITEMS, KL_ITEMS, MIA_ITEMS) if cfg.teacher_forced_items is None else \
        (cfg.teacher_forced_items,) * 3
    retain = data.retain.heldout
    out[prefix + "ppl_retain"] = perplexity(model, tok, retain[:ppl_n], edited)
    # mmie.py's members and non-members are lines it trained on (forget[:120], retain[:120]): training lines here.
    members, nonmembers = data.forget.train[:mia_n], data.retain.train[:mia_n]
    if base is not None:
        out[prefix + "token_kl_retain"] = token_kl(model, tok, retain[:kl_n], base, edited)
    mia = membership(model, tok, members, nonmembers, cfg.min_k, edited, base, base_losses)
    out["mia_min_k_auc" + ("" if base is not None else "_base")] = mia.pop("mia_min_k_auc")
    out.update({prefix + k: v for k, v in mia.items()})
    return out
