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

from trainables.data import DataError
from trainables.language.scripts import char_script

# Below this share of whole-character tokens, the tokenizer does not know the forget script (see the check).
MIN_WHOLE_TOKEN_SHARE = 0.2


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
    """Share of the forget set's tokens that are whole-character tokens of its script; an error if too few.

    A byte-level tokenizer can spell any script, but one that never learnt a script spells it byte by byte (three
    fragment tokens per Devanagari or Thai letter, shared with every other script of that Unicode range), and a
    tokenizer with <unk> loses it altogether: either way the forget language's token mass means nothing.
    """
    scripted = whole = 0
    for text in forget_texts:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        for token_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
            if not any(char_script(ch) == script for ch in text[start:end]):
                continue
            scripted += 1
            piece = tok.decode([token_id])
            whole += "\ufffd" not in piece and any(char_script(ch) == script for ch in piece)
    share = whole / scripted if scripted else 0.0
    if share < MIN_WHOLE_TOKEN_SHARE:
        raise DataError(
            f"forget file {path}: its language (script {script}) is not in the tokenizer's vocabulary: only "
            f"{share:.0%} of its tokens are whole {script} characters or words (byte fragments or unknown otherwise)"
        )
    return share
