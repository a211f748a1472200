"""Turning lines of text into model inputs: right-padded for teacher forcing, left-padded for generation; and
mmie.py's way (`whole_set_rows`), for a study that trains or measures as mmie.py does."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch


def _prefix_ids(tok) -> list[int]:
    # Tokenizers with a BOS token (the embedded one) start every line with it, as in pretraining.
    return [tok.bos_token_id] if getattr(tok, "bos_token_id", None) is not None else []


def encode(tok, texts: list[str], max_len: int, left_pad: bool = False) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (-100 on padding) for a list of texts, truncated to max_len."""
    return pad_rows(tok, [tok.encode(t, add_special_tokens=False) for t in texts], max_len, left_pad)


def pad_rows(tok, rows: list[list[int]], max_len: int, left_pad: bool = False) -> dict[str, torch.Tensor]:
    """The same from token ids already encoded (without special tokens)."""
    prefix = _prefix_ids(tok)
    rows = [(prefix + r)[:max_len] for r in rows]
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if left_pad else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@contextmanager
def mmie_tokenizer(tok):
    """The tokenizer as mmie.py's main sets it up: left padding, left truncation, pad = end-of-text."""
    saved = tok.padding_side, tok.truncation_side, tok.pad_token
    tok.padding_side, tok.truncation_side, tok.pad_token = "left", "left", tok.eos_token
    try:
        yield tok
    finally:
        tok.padding_side, tok.truncation_side, tok.pad_token = saved


def whole_set_rows(tok, texts: Sequence[str], max_len: int) -> dict[str, torch.Tensor]:
    """mmie.py's tokenisation: one tokenizer call over the whole list, so every row is padded (on the left) to the
    longest line of the list, a long line keeps its end, and nothing is added that the tokenizer does not add
    itself. labels = input_ids: pads count in every loss, as in mmie.py."""
    with mmie_tokenizer(tok):
        enc = tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_len)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": enc["input_ids"].clone()}
