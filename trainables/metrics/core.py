"""Every metric of a study, defined once and used by training, evaluation and the embedded model's report.

Definitions (docs/metrics.md): forget_efficacy = 1 - m_t/m_0 with m the forget-language token mass on a fixed
held-out forget batch; utility = min(1, ppl_0/ppl_t) on a fixed batch of the utility set (held-out retain lines,
or a general utility set never trained on): an unlearning run is not better than its base because retain updates
fitted the retain distribution, so the ratio is capped at 1 (the raw ratio is logged as `utility_raw`); collateral
utilities are the same capped ratio on the mixed set and the geometric mean of it over the cross-lingual sets;
extraction strength (ES) is the share of *sampled* continuations of forget prompts that language ID labels as the
forget language (greedy continuations of a broken model copy the prompt and overstate ES). What those
continuations are (no language, the retain language, fluent or not, repetitive or not) is measured beside ES: see
trainables.metrics.degenerate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainables.model.batching import _prefix_ids as _prefix
from trainables.model.batching import encode, pad_rows, to_device


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence summed NLL and token counts, with the causal shift and padding (-100) ignored."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.clamp_min(0).reshape(-1),
        reduction="none",
    ).view_as(shift_labels)
    nll = nll * mask
    return nll.sum(dim=1), mask.sum(dim=1)


def forget_token_mass(logits: torch.Tensor, labels: torch.Tensor, forget_token_mask: torch.Tensor) -> float:
    """Mean probability, over real next-token positions, that the next token is a forget-language token."""
    probs = torch.softmax(logits[:, :-1, :].float(), dim=-1)
    mass = probs @ forget_token_mask.to(probs.dtype)
    positions = labels[:, 1:] != -100
    return float(mass[positions].mean())


def perplexity_from(total: torch.Tensor, count: torch.Tensor) -> float:
    """Token-level perplexity from per-sequence NLL sums and counts (capped where exp would overflow)."""
    return math.exp(min(float(total.sum() / count.sum().clamp_min(1)), 700.0))


@torch.no_grad()
def perplexity(model, batch: dict[str, torch.Tensor]) -> float:
    batch = to_device(batch, model.device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return perplexity_from(*token_nll(logits, batch["labels"]))


@torch.no_grad()
def sample_continuations(
    model, tok, prompts: list[str], max_new_tokens: int, seed: int, batch_size: int = 64
) -> list[str]:
    """Sampled (temperature 1, no top-k) continuations of prompts, decoded without the prompt.

    Runs under a forked RNG so that evaluating never changes the training run's random stream.
    """
    out: list[str] = []
    with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            batch = to_device(encode(tok, chunk, max_len=10_000, left_pad=True), model.device)
            generated = model.generate(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
            new = generated[:, batch["input_ids"].shape[1] :]
            out.extend(tok.batch_decode(new, skip_special_tokens=True))
    return out


def extraction_strength(continuations: list[str], language_id, forget_code: str) -> float:
    """Share of continuations labelled as the forget language."""
    return language_id.share(continuations, forget_code)


def ratio_utility(ppl_before: float, ppl_now: float) -> float:
    """ppl_0 / ppl_t, uncapped: 1.0 means unchanged, below 1 means damaged; 0 for a non-finite perplexity."""
    if not math.isfinite(ppl_now) or ppl_now <= 0:
        return 0.0
    return ppl_before / ppl_now


def capped_utility(raw: float) -> float:
    """What the study ranks on: min(1, ppl_0/ppl_t). Above 1 the run only fitted the utility set's distribution."""
    return min(1.0, raw)


def next_token_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean entropy (nats) of the next-token distribution over real positions; near 0 for a collapsed model."""
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return float(entropy[labels[:, 1:] != -100].mean())


@torch.no_grad()
def continuation_nll(model, tok, prompts: list[str], continuations: list[str], max_len: int = 256) -> float:
    """Per-token NLL of the continuations given their prompts under `model` (the frozen base: a fluency score),
    over every continuation token; nan when every continuation is empty."""
    rows, starts = [], []
    for prompt, cont in zip(prompts, continuations):
        p = tok.encode(prompt, add_special_tokens=False)
        c = tok.encode(cont, add_special_tokens=False)
        rows.append(p + c)
        starts.append(len(p))
    batch = pad_rows(tok, rows, max_len)
    offset = len(_prefix(tok))  # pad_rows starts every row with the BOS token, if the tokenizer has one
    labels = batch["labels"].clone()
    for i, start in enumerate(starts):  # score only the continuation's tokens
        labels[i, : offset + start] = -100
    batch = to_device(batch, model.device)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    total, count = token_nll(logits, labels.to(logits.device))
    return float(total.sum() / count.sum()) if int(count.sum()) else float("nan")


def distinct_share(tok, texts: list[str]) -> float:
    """Mean over non-empty texts of distinct tokens / tokens (1 = no repetition); 0 when every text is empty."""
    shares = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        if ids:
            shares.append(len(set(ids)) / len(ids))
    return sum(shares) / len(shares) if shares else 0.0


def geometric_mean(values: list[float]) -> float:
    if not values:
        return float("nan")
    if any(v <= 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def parameter_norm(params) -> float:
    """L2 norm over all given parameters (the adapter's weight norm)."""
    squares = [p.detach().float().pow(2).sum() for p in params]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def gradient_norm(params) -> float:
    squares = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0
