"""The embedded default's builder: a tiny multilingual causal LM and its tokenizer, built here on CPU.

Nothing comes from a hub. The corpus is generated (trainables.embedded.corpus) or read from the study's own JSONL files,
a byte-level BPE tokenizer is trained on it, and a Qwen2 model (a real transformers class, so LoRA finds
q_proj/v_proj and hooks find model.model.layers) is pretrained on it. Everything is cached on disk under a hash of
the spec, so the second study starts at once; on a cluster each node builds the same bytes from the same seed.

Two lessons from a prototype shape the build: every pretraining chunk is packed from one language (mixed chunks
teach the model to switch language after end-of-text), and the tokenizer must load as mmie.py loads it: a plain
`AutoTokenizer.from_pretrained` on a qwen2 folder builds Qwen2's tokenizer class, which replaces a saved pre-tokenizer
with Qwen2's own, so the BPE is trained under Qwen2's normaliser and pre-tokenizer (a pre-tokenizer of our own that
kept vowel signs inside Indic words made mmie.py tokenise every Hindi line differently from training).

mmie.py prompts with each whole line as a user message through the tokenizer's chat template. A model pretrained
only on lines after end-of-text answers a whole line with end-of-text (every reply empty, mmie.py's ES 0 before and
after unlearning), so the tokenizer carries a chat template and a share of pretraining is prompt/reply pairs of one
language: a line as the user turn, another line of the same language as the reply.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from trainables.cache import building_folder, cache_root, file_lock, remove_leftovers
from trainables.data import DataPaths, load_study_data, prompt_prefix, read_jsonl, split_heldout, write_jsonl
from trainables.language.scripts import dominant_script, script_share
from trainables.metrics.core import perplexity, sample_continuations
from trainables.model.batching import encode
from trainables.settings import EMBEDDED_ROLES, EmbeddedSpec  # noqa: F401  (the spec, also imported from here)

EOT = "<|endoftext|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
# A turn is its role's special token then its text; the generation prompt is the assistant's token.
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
# Share of pretraining items that are prompt/reply pairs (the rest are single lines, which a study's prefix prompts
# continue).
CHAT_SHARE = 0.3
# Qwen2's pre-tokenizer, as transformers' Qwen2Tokenizer rebuilds it from any qwen2 folder (with an NFC normaliser).
QWEN2_PRETOKENIZE_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                             r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Lines of each evaluation-only set (trainables.embedded.corpus.EVAL_SETS) written beside the corpus; never pretrained on.
EVAL_SET_LINES = 400
# Retaining English, the retain set is en_retain (English without the general templates) and utility is measured on
# en_general (lines of those templates that pretraining held out): a general utility set never trained on.
RETAIN_EN, GENERAL_EN = "en_retain", "en_general"
# Forget languages with a generated adversarial prompt set (English instructions to write in them).
ADVERSARIAL_LANGUAGES = ("hi", "ur", "pa", "bn")


@dataclass
class BuiltModel:
    """A model this project built and cached: its folder (model + tokenizer) and its build report."""

    root: Path
    report: dict = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"


@dataclass
class EmbeddedModel(BuiltModel):
    """The built embedded default: its model folder, report, and the data files of its generated corpus."""

    def data_paths(self, forget: str = EMBEDDED_ROLES["forget"], retain: str = EMBEDDED_ROLES["retain"]) -> DataPaths:
        """DataPaths over the generated corpus; forget/retain may be any of its languages (say bn and en). Retaining
        English, the retain set leaves out the general English templates and utility is measured on them
        (trainables.embedded.corpus.GENERAL_EN_TEMPLATES)."""
        data = self.root / "data"
        roles = {forget, retain}
        mixed = EMBEDDED_ROLES["mixed"] if forget == "hi" and retain == "en" else None
        xlang = tuple(str(data / f"{c}.jsonl") for c in ("hi", "ur", "pa", "bn") if c not in roles)
        english = retain == "en"
        return DataPaths(
            forget=str(data / f"{forget}.jsonl"),
            retain=str(data / f"{RETAIN_EN if english else retain}.jsonl"),
            mixed=str(data / f"{mixed}.jsonl") if mixed else None,
            xlang=xlang,
            utility_eval=str(data / f"{GENERAL_EN}.jsonl") if english else None,
            adversarial=str(data / f"adversarial_{forget}.jsonl") if forget in ADVERSARIAL_LANGUAGES else None,
        )


def ensure_embedded(spec: EmbeddedSpec = EmbeddedSpec(), log=print) -> EmbeddedModel:
    """The built embedded default for `spec`, building it first if the cache does not hold it.

    A file lock makes concurrent callers (trials on one node) wait for a single build; the build that holds it
    first removes what builds of the same spec left when they were killed.
    """
    root = cache_root() / "embedded" / spec.key()
    report_path = root / "report.json"
    if not report_path.exists():
        with file_lock(cache_root() / "embedded" / f"{spec.key()}.lock"):
            if not report_path.exists():
                remove_leftovers(root.parent, spec.key(), log)
                with _every_core():
                    _build(spec, root, log)
    _write_eval_sets(spec, root)  # also into a build from before they existed: the model does not change
    if not spec.data_files:
        _write_adversarial(root / "data", spec.seed)
    return EmbeddedModel(root=root, report=json.loads(report_path.read_text()))


def _heldout_first(lines: list[str], unseen: set[str], spec: EmbeddedSpec) -> list[str]:
    """`lines` ordered so that a study's held-out split (split_heldout with the spec's seed) takes the lines
    pretraining never saw first, as it does on the corpus's own files."""
    positions = list(range(len(lines)))
    random.Random(spec.seed).shuffle(positions)  # split_heldout's order
    ranked = sorted(lines, key=lambda line: line not in unseen)  # stable: unseen lines first, in corpus order
    out = [""] * len(lines)
    for position, line in zip(positions, ranked):
        out[position] = line
    return out


def _write_eval_sets(spec: EmbeddedSpec, root: Path) -> None:
    """Derived data files beside the corpus: the evaluation-only sets (a romanised code-mixed set) and English split
    into the retain set and the general utility set. Deterministic, each written to a temporary file and renamed, so
    that concurrent writers need no lock; also added to a build from before they existed (the model is the same).
    A build on the study's own data files has none."""
    from trainables.embedded.corpus import EVAL_SETS, GENERAL_EN_TEMPLATES, english_templates, generate_eval_sets

    data = root / "data"
    names = (*EVAL_SETS, RETAIN_EN, GENERAL_EN)
    if spec.data_files or all((data / f"{name}.jsonl").is_file() for name in names):
        return
    sets = generate_eval_sets(spec.seed, EVAL_SET_LINES)
    english = read_jsonl(data / "en.jsonl")
    general = {line for line, t in zip(english, english_templates(spec.seed, spec.lines_per_language))
               if t in GENERAL_EN_TEMPLATES}
    _, heldout = split_heldout(english, spec.seed, spec.heldout)  # as _build held them out of pretraining
    sets[RETAIN_EN] = _heldout_first([line for line in english if line not in general], set(heldout), spec)
    sets[GENERAL_EN] = [line for line in heldout if line in general]
    for name, lines in sets.items():
        path = data / f"{name}.jsonl"
        if not path.is_file():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".jsonl", dir=data)
            os.close(fd)
            write_jsonl(tmp, lines)
            os.replace(tmp, path)


def _write_adversarial(data: Path, seed: int) -> None:
    """The adversarial prompt sets (never pretrained on, so a cache built before them gains them unchanged)."""
    from trainables.embedded.corpus import adversarial_prompts

    for language in ADVERSARIAL_LANGUAGES:
        path = data / f"adversarial_{language}.jsonl"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            write_jsonl(tmp, adversarial_prompts(language, seed))
            tmp.rename(path)  # atomic: concurrent writers write the same bytes


def _corpus(spec: EmbeddedSpec) -> dict[str, list[str]]:
    if spec.data_files:
        return {Path(p).stem: read_jsonl(p) for p in spec.data_files}
    from trainables.embedded.corpus import generate_corpus

    return generate_corpus(seed=spec.seed, lines_per_language=spec.lines_per_language)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one: Linux; else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def _every_core():
    """A build is what its callers wait for (on its lock), so it runs on every core this process may use, whatever
    OMP_NUM_THREADS says for the rest: scripts/test.sh gives each test worker one thread, and the first build of a
    test run took twice as long on it while the other worker waited."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, usable_cores()))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(spec: EmbeddedSpec, root: Path, log) -> None:
    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    tmp = building_folder(root.parent, spec.key())
    try:
        corpus = _corpus(spec)
        for name, lines in corpus.items():
            write_jsonl(tmp / "data" / f"{name}.jsonl", lines)
        # Split exactly as studies will, so the held-out lines a study evaluates on are never pretrained on (the
        # relearning attack's lines are, like every other forget line: unlearning is what never sees them).
        splits = {}
        for name in corpus:
            path = str(tmp / "data" / f"{name}.jsonl")
            ds = load_study_data(DataPaths(forget=path, retain=path), seed=spec.seed, heldout=spec.heldout)
            splits[name] = ds.forget
        t0 = time.perf_counter()
        tok = train_tokenizer([line for s in splits.values() for line in s.train + s.attack], spec.vocab_size)
        tokenizer_s = time.perf_counter() - t0
        model = new_tiny_model(spec, len(tok))
        t0 = time.perf_counter()
        final_loss = pretrain(model, tok, {n: s.train + s.attack for n, s in splits.items()}, spec, log)
        pretrain_s = time.perf_counter() - t0
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
        report = {
            "spec": asdict(spec),
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab_size": len(tok),
            "final_pretrain_loss": final_loss,
            "tokenizer_seconds": tokenizer_s,
            "pretrain_seconds": pretrain_s,
            "languages": language_report(model, tok, {n: s.heldout for n, s in splits.items()}, spec.seed),
        }
        _publish(tmp, root, report, started)
        log(f"embedded default built in {report['build_seconds']:.0f}s at {root}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, root: Path, report: dict, started: float) -> None:
    """Write the build's report and move the finished build into place in one rename (a reader never sees half)."""
    report["build_seconds"] = time.perf_counter() - started
    (tmp / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)


def train_tokenizer(lines: list[str], vocab_size: int):
    """A byte-level BPE under Qwen2's normaliser and pre-tokenizer, with end-of-text and the chat template's role
    tokens as special tokens, so that a plain AutoTokenizer (Qwen2's class) tokenises exactly as training did."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOT, eos_token=EOT, pad_token=EOT)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def new_tiny_model(spec: EmbeddedSpec, vocab_size: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=2 * spec.seq_len,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return Qwen2ForCausalLM(config)


def pack_chunks(tok, lines: list[str], seq_len: int, rng: random.Random) -> torch.Tensor:
    """One language's lines cut into seq_len chunks: each item after an end-of-text token is either a line or, with
    probability CHAT_SHARE, a prompt/reply pair (the line as the user turn, a random line of the same set as the
    reply), whose reply the next item's end-of-text ends. The prompt is mmie.py's, from the one function that makes
    it (trainables.metrics.mmie.chat_prompts), so the model learns the format mmie.py will prompt it with."""
    from trainables.metrics.mmie import chat_prompts

    ids: list[int] = []
    for line in lines:
        ids.append(tok.eos_token_id)
        if rng.random() < CHAT_SHARE:
            ids.extend(tok.encode(chat_prompts(tok, [line])[0], add_special_tokens=False))
            line = lines[rng.randrange(len(lines))]
        ids.extend(tok.encode(line, add_special_tokens=False))
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def pretrain(model, tok, train_lines: dict[str, list[str]], spec: EmbeddedSpec, log) -> float:
    pairs_rng = random.Random(spec.seed + 1)
    chunks = [pack_chunks(tok, lines, spec.seq_len, pairs_rng) for lines in train_lines.values()]
    chunks = [c for c in chunks if len(c)]
    rng = random.Random(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warmup = max(spec.pretrain_steps // 20, 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(spec.pretrain_steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    loss = float("nan")
    for step in range(spec.pretrain_steps):
        # Each row is one chunk of one language; languages are drawn uniformly so small sets are learnt too.
        rows = []
        for _ in range(spec.batch_size):
            c = chunks[rng.randrange(len(chunks))]
            rows.append(c[rng.randrange(len(c))])
        batch = torch.stack(rows)
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss = out.loss.item()
        if step % 100 == 0 or step == spec.pretrain_steps - 1:
            log(f"pretrain step {step}: loss {loss:.3f}")
    model.eval()
    return loss


def language_report(model, tok, heldout: dict[str, list[str]], seed: int, prompts: int = 64) -> dict:
    """Per language: held-out perplexity, the uniform baseline, and script fidelity of sampled continuations.

    Script fidelity is the share of continuations of that language's prompts whose letters are mostly in the
    language's own script (None for a code-mixed set, which has no single script). The chat figures are the same
    for replies to whole held-out lines prompted as mmie.py prompts (through the chat template, its sampling):
    `chat_empty_share` (replies under two words) and `chat_script_fidelity`.
    """
    from trainables.metrics.mmie import empty_share, generate

    report = {}
    for name, lines in heldout.items():
        script, share = dominant_script(lines)
        ppl = perplexity(model, encode(tok, lines, max_len=128))
        entry = {"perplexity": ppl, "uniform_perplexity": float(len(tok)), "script": script}
        replies = generate(model, tok, lines[: prompts // 2], 32, seed)
        entry["chat_empty_share"] = empty_share(replies)
        if share >= 0.9:
            conts = sample_continuations(model, tok, [prompt_prefix(t) for t in lines[:prompts]], 24, seed)
            entry["script_fidelity"] = sum(script_share(c, script) > 0.5 for c in conts) / len(conts)
            entry["chat_script_fidelity"] = sum(script_share(r, script) > 0.5 for r in replies) / len(replies)
        else:
            entry["script_fidelity"] = entry["chat_script_fidelity"] = None
        report[name] = entry
    return report


# ---- the retain-only oracle ---------------------------------------------------------------------------------------


@dataclass
class OracleModel(BuiltModel):
    """The embedded model pretrained without the forget language (its folder holds the main model's tokenizer)."""


def ensure_oracle(spec: EmbeddedSpec, forget: str, log=print) -> OracleModel:
    """The retain-only oracle of `spec` for the corpus set `forget` (TOFU's and MUSE's "retrain from scratch"):
    the same tiny model, seed, steps and tokenizer, pretrained on the same lines minus the forget set and minus
    every line of another set (the code-mixed one) that contains a character of the forget script.

    Cached beside the main model and built under the same file lock, so concurrent callers wait for one build; the
    build that holds it first removes what oracle builds of the same spec left when they were killed.
    """
    main = ensure_embedded(spec, log=log)
    root = main.root / f"oracle-{forget}"
    report_path = root / "report.json"
    if not report_path.exists():
        with file_lock(cache_root() / "embedded" / f"{spec.key()}.lock"):
            if not report_path.exists():
                remove_leftovers(main.root, "oracle", log)
                with _every_core():
                    _build_oracle(spec, main, forget, root, log)
    return OracleModel(root=root, report=json.loads(report_path.read_text()))


def _build_oracle(spec: EmbeddedSpec, main: EmbeddedModel, forget: str, root: Path, log) -> None:
    from trainables.language.identification import detect_language
    from trainables.language.scripts import char_script
    from trainables.model.loading import load_tokenizer

    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    names = list(main.report["languages"])  # the corpus's sets, in the main build's order
    if forget not in names:
        raise ValueError(f"oracle: no set {forget!r} in the embedded corpus (sets: {', '.join(names)})")
    splits = {}
    for name in names:
        path = str(main.root / "data" / f"{name}.jsonl")
        splits[name] = load_study_data(DataPaths(forget=path, retain=path), seed=spec.seed, heldout=spec.heldout).forget
    script, _ = dominant_script(splits[forget].train)
    # Who the oracle is, for a study to check: a generated set is named by its language; a study's file is identified.
    language = forget if not spec.data_files else detect_language(splits[forget].train)
    train_lines, dropped = {}, {}
    for name, s in splits.items():
        if name == forget:
            continue
        lines = s.train + s.attack  # the main build's pretraining lines
        kept = [line for line in lines if not any(char_script(ch) == script for ch in line)]
        train_lines[name], dropped[name] = kept, len(lines) - len(kept)
    # Every oracle of the spec builds in main.root as .building-oracle-XXXXXXXX, under the main model's lock.
    tmp = building_folder(main.root, "oracle")
    try:
        # The main model's tokenizer, byte for byte, so token masses and perplexities compare.
        (tmp / "model").mkdir()
        for f in main.model_dir.glob("tokenizer*"):
            shutil.copy(f, tmp / "model" / f.name)
        tok = load_tokenizer(str(main.model_dir))
        model = new_tiny_model(spec, len(tok))
        t0 = time.perf_counter()
        final_loss = pretrain(model, tok, {n: v for n, v in train_lines.items() if v}, spec, log)
        pretrain_s = time.perf_counter() - t0
        model.save_pretrained(tmp / "model")
        report = {
            "spec": asdict(spec),
            "forget": forget,
            "forget_language": language,
            "forget_script": script,
            "lines_dropped": dropped,
            "final_pretrain_loss": final_loss,
            "pretrain_seconds": pretrain_s,
            "languages": language_report(model, tok, {n: s.heldout for n, s in splits.items()}, spec.seed),
        }
        _publish(tmp, root, report, started)
        log(f"retain-only oracle (without {forget}) built in {report['build_seconds']:.0f}s at {root}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
