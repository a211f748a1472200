"""Metric functions on hand-built inputs, and the forget-language vocabulary on the real tokenizer."""

import math

import pytest
import torch

from trainables.data import DataError, read_jsonl
from trainables.language.scripts import char_script, dominant_script
from trainables.language.vocabulary import check_forget_language_in_vocabulary, forget_token_mask, script_token_ids
from trainables.metrics.core import forget_token_mass, geometric_mean, perplexity_from, ratio_utility, token_nll
from trainables.model.loading import load_tokenizer


def test_token_nll_ignores_padding_and_shifts():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[1, 2, 3, 4, 5], [1, 2, -100, -100, -100]])
    total, count = token_nll(logits, labels)
    assert count.tolist() == [4, 1]
    expected = torch.nn.functional.cross_entropy(logits[1, 0:1], labels[1, 1:2])
    assert torch.allclose(total[1], expected)
    assert perplexity_from(total, count) == pytest.approx(math.exp(float(total.sum()) / 5))


def test_forget_token_mass_counts_only_marked_tokens_at_real_positions():
    # Vocabulary of 4; tokens 2 and 3 are forget tokens. Position 0 puts all mass on token 2, position 1 on 0.
    logits = torch.full((1, 3, 4), -1e9)
    logits[0, 0, 2] = 0
    logits[0, 1, 0] = 0
    logits[0, 2, 3] = 0  # the last position predicts nothing (no next label)
    labels = torch.tensor([[0, 1, 1]])
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0])
    assert forget_token_mass(logits, labels, mask) == pytest.approx(0.5)
    labels_padded = torch.tensor([[0, 1, -100]])
    assert forget_token_mass(logits, labels_padded, mask) == pytest.approx(1.0)


def test_utility_ratios():
    assert ratio_utility(2.0, 2.0) == 1.0
    assert ratio_utility(2.0, 4.0) == 0.5
    assert ratio_utility(2.0, float("inf")) == 0.0
    assert geometric_mean([0.5, 2.0]) == pytest.approx(1.0)
    assert geometric_mean([0.0, 2.0]) == 0.0
    assert math.isnan(geometric_mean([]))


def test_scripts_ignore_shared_punctuation():
    assert char_script("क") == "DEVANAGARI" and char_script("ি") == "BENGALI" and char_script("ب") == "ARABIC"
    assert char_script("।") is None and char_script("5") is None and char_script(" ") is None
    assert char_script("\u093f") == "DEVANAGARI"  # a combining vowel sign counts
    assert dominant_script(["নমস্কার।", "hello"]) == ("BENGALI", pytest.approx(7 / 12))


def test_forget_tokens_include_byte_fragments_and_exclude_danda(embedded):
    tok = load_tokenizer(str(embedded.model_dir))
    hindi = read_jsonl(embedded.root / "data" / "hi.jsonl")[:500]
    ids = script_token_ids(tok, hindi, "DEVANAGARI")
    danda = tok.encode("।", add_special_tokens=False)
    assert ids and not set(danda) & ids
    # Tokens whose own bytes are not valid UTF-8 (fragments of a Devanagari character) are counted.
    fragments = [i for i in ids if "\ufffd" in tok.decode([i])]
    assert fragments, "expected byte-fragment tokens among the Devanagari tokens"
    english = read_jsonl(embedded.root / "data" / "en.jsonl")[:500]
    assert not script_token_ids(tok, english, "DEVANAGARI")
    # Pooled over the study's sets (as the trainable does), whole Bengali tokens are never forget tokens.
    bengali = read_jsonl(embedded.root / "data" / "bn.jsonl")[:500]
    mask = forget_token_mask(tok, len(tok), {"hi": hindi, "bn": bengali, "en": english}, "DEVANAGARI")
    marked = set(mask.nonzero().flatten().tolist())
    whole_bengali = {i for i in script_token_ids(tok, bengali, "BENGALI") if "\ufffd" not in tok.decode([i])}
    assert whole_bengali and not marked & whole_bengali
    assert {i for i in ids if "\ufffd" not in tok.decode([i])} <= marked


def test_a_script_the_tokenizer_lacks_is_rejected(embedded, tmp_path):
    tok = load_tokenizer(str(embedded.model_dir))
    thai = ["สวัสดีครับ วันนี้อากาศดีมาก"] * 5  # bytes only: the embedded tokenizer has no Thai tokens
    with pytest.raises(DataError, match="forget file f.jsonl: its language .*THAI.* not in the tokenizer"):
        check_forget_language_in_vocabulary(tok, thai, "THAI", "f.jsonl")


def test_utility_is_capped_at_one_and_the_raw_ratio_kept():
    from trainables.metrics.core import capped_utility

    raw = ratio_utility(3.0, 2.0)  # retain updates lowered perplexity: not better than the base model
    assert raw == 1.5 and capped_utility(raw) == 1.0 and capped_utility(0.4) == 0.4


def test_next_token_entropy_of_uniform_and_collapsed_distributions():
    from trainables.metrics.core import next_token_entropy

    labels = torch.tensor([[1, 2, 3, -100]])
    assert next_token_entropy(torch.zeros(1, 4, 8), labels) == pytest.approx(math.log(8), rel=1e-5)
    collapsed = torch.full((1, 4, 8), -1e4)
    collapsed[..., 5] = 0
    assert next_token_entropy(collapsed, labels) < 1e-3


def test_distinct_share_scores_repetition(embedded):
    from trainables.metrics.core import distinct_share

    tok = load_tokenizer(str(embedded.model_dir))
    assert distinct_share(tok, ["। । । । । । । ।"]) < 0.3
    assert distinct_share(tok, ["Emma goes to the park with her aunt every Sunday."]) > 0.9
    assert distinct_share(tok, ["", ""]) == 0.0


def test_romanized_cues_find_hindi_in_the_romanised_code_mixed_set():
    """lingua reads romanised Hindi-English as English; with es_romanized's cue words it counts as Hindi, and no
    English line of the corpus (either English set) is taken for it."""
    from trainables.embedded.corpus import generate_corpus, generate_eval_sets
    from trainables.language.identification import LanguageIdentifier

    roman = generate_eval_sets(seed=0, lines=300)["hi_en_roman"]
    english = generate_corpus(seed=0, lines_per_language=300)
    codes = ["hi", "en", "ur", "pa", "bn"]
    plain, romanized = LanguageIdentifier(codes), LanguageIdentifier(codes, romanized="hi")
    assert plain.share(roman, "hi") == 0.0 and plain.share(roman, "en") > 0.9
    assert romanized.share(roman, "hi") > 0.95
    assert romanized.share(english["en"], "hi") == 0.0  # every English template, the general ones included
    assert romanized.share(english["hi"], "hi") == 1.0  # Devanagari Hindi is still Hindi
    with pytest.raises(ValueError, match="no romanised cue words for language 'bn'"):
        LanguageIdentifier(codes, romanized="bn")


def test_degenerate_rule_names_each_threshold_crossed():
    from trainables.metrics.degenerate import DegenerateRule

    rule = DegenerateRule(max_no_language=0.5, max_nll_ratio=2.5, min_distinct=0.3, min_entropy=0.05)
    healthy = {"es_none": 0.05, "forget_cont_nll_ratio": 1.3, "forget_cont_distinct": 0.9, "forget_entropy": 1.0}
    assert rule.reasons(healthy) == [] and not rule.is_degenerate(healthy)
    broken = {"es_none": 0.9, "forget_cont_nll_ratio": float("nan"), "forget_cont_distinct": 0.1,
              "forget_entropy": 0.01}
    assert rule.reasons(broken) == ["es_none 0.9 > 0.5", "forget_cont_distinct 0.1 < 0.3", "forget_entropy 0.01 < 0.05"]
    assert rule.reasons({**healthy, "forget_cont_nll_ratio": 4.0}) == ["forget_cont_nll_ratio 4 > 2.5"]
    assert not DegenerateRule(None, None, None, None).is_degenerate(broken)
