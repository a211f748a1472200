"""Turning lines of text into model inputs: right-padded for teacher forcing, left-padded for generation."""

from __future__ import annotations

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
