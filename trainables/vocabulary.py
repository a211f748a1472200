"""Which tokens of a tokenizer's vocabulary belong to a language, found from the tokenizer and the data.

A token is a language's token when the characters it covers in the data are mostly of that language's script.
Going through the data's character offsets (not the token's own string) matters for byte-level tokenizers: a token
that is a fragment of a multi-byte character has no script of its own, but the character it came from does.
Tokens that never occur in the data are left out: when unlearning collapses a model, probability spreads over
unused tokens, and an all-vocabulary mass would bounce back while the mass on real tokens stays at zero.
Tokens covering only neutral characters (spaces, digits, shared punctuation such as the danda) are neutral.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch

from .data import DataError
from .unicode_scripts import char_script


def script_token_ids(tok, texts: Iterable[str], script: str) -> set[int]:
    """Ids of tokens that occur in `texts` and whose covered letters are mostly in `script`."""
    votes: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # token id -> [in script, other script]
    for text in texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
            for ch in text[start:end]:
                s = char_script(ch)
                if s is not None:
                    votes[token_id][0 if s == script else 1] += 1
    return {t for t, (mine, other) in votes.items() if mine > other}


def forget_token_mask(tok, vocab_size: int, texts_by_set: dict[str, list[str]], script: str) -> torch.Tensor:
    """A 0/1 vector over the model's vocabulary marking the forget-language tokens seen in any of the sets."""
    ids: set[int] = set()
    for texts in texts_by_set.values():
        ids |= script_token_ids(tok, texts, script)
    mask = torch.zeros(vocab_size)
    if ids:
        mask[sorted(ids)] = 1.0
    return mask


def check_forget_language_in_vocabulary(tok, forget_texts: list[str], script: str, path: str) -> float:
    """Share of the forget set's scripted tokens that are forget-language tokens; an error if too few.

    A tokenizer that has no tokens for the forget script (it maps them to <unk>, say) cannot measure forgetting.
    """
    ids = script_token_ids(tok, forget_texts, script)
    scripted = covered = 0
    for text in forget_texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
            if any(char_script(ch) is not None for ch in text[start:end]):
                scripted += 1
                covered += token_id in ids
    share = covered / scripted if scripted else 0.0
    if share < 0.5:
        raise DataError(
            f"forget file {path}: its language (script {script}) is not in the tokenizer's vocabulary: only "
            f"{share:.0%} of its tokens are {script} tokens"
        )
    return share
