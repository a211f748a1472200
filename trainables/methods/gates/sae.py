"""Sparse autoencoders on one decoder layer's residual stream, and DSG's feature selection.

Dynamic SAE Guardrails (Muhamed et al. 2025, "SAEs Can Improve Unlearning: Dynamic Sparse Autoencoder Guardrails
for Precision Unlearning in LLMs", arXiv 2504.08192) gate an LLM through an SAE on an early layer's residual
stream. This module trains that SAE (once per model, layer, config and data; cached on disk), reads a pretrained
one in SAELens's folder format, and selects the features that carry the forget set.

The SAE is of the TopK family, trained as BatchTopK (Bussmann et al. 2024, arXiv 2412.06410; TopK: Gao et al.
2024, "Scaling and evaluating sparse autoencoders") and used as the JumpReLU it converts to: pre = W_enc (h − b_dec)
+ b_enc, z = pre · [pre > θ], ĥ = W_dec z + b_dec, decoder rows unit-norm. Training keeps the k·B largest
activations of each batch of B tokens (mean L0 k); θ is the mean, over the second half of training, of the
smallest activation each batch kept. TopK rather than ReLU+L1 because the sparsity is set directly (nothing to
tune per model), there is no L1 shrinkage of the activations DSG's clamp is scaled by, and the AuxK loss keeps dead
features few on small data. BatchTopK rather than per-token TopK because its threshold form encodes each feature on
its own: a gate computes only its selected features (d_model × n_features per token), where a per-token TopK must
rank all d_sae features at every token (on the embedded model that cost 0.7-0.8 of a bare forward pass). Per-token
TopK, ReLU and JumpReLU SAEs (Gemma Scope, which DSG uses) load into the same class.

Activations are the output of `model.model.layers[layer]` (SAELens's `blocks.{layer}.hook_resid_post`), taken at
real tokens only: padding and the first position of each line are left out, as DSG's code does (the first
position is the attention sink, an outlier that is the same on every line).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from trainables.cache import building_folder, cache_root, file_lock, remove_leftovers
from trainables.data import StudyData
from trainables.model.batching import encode, to_device
from trainables.model.decoder_layers import decoder_layers, hidden_of
from trainables.settings import SAEConfig  # noqa: F401  (its settings, also imported from here)

FORMAT_VERSION = 1


class SparseAutoencoder(nn.Module):
    """Per-token TopK SAE (k set) or JumpReLU SAE (k None; threshold 0 is a plain ReLU SAE), in SAELens's layout."""

    def __init__(self, d_model: int, d_sae: int | None = None, k: int | None = None):
        super().__init__()
        d_sae = d_sae or 8 * d_model
        self.d_model, self.d_sae, self.k = d_model, d_sae, k
        self.W_enc = nn.Parameter(torch.zeros(d_model, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_model))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        if k is None:
            self.register_buffer("threshold", torch.zeros(d_sae))

    def pre_activations(self, h: torch.Tensor) -> torch.Tensor:
        return (h.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.k is None:
            return pre * (pre > self.threshold)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Feature activations z ≥ 0 of hidden states h (..., d_model) -> (..., d_sae)."""
        return self.activate(self.pre_activations(h))

    def encode_features(self, h: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """encode(h)[..., indices]; a JumpReLU SAE computes only those columns."""
        if self.k is not None:
            return self.encode(h)[..., indices]
        pre = (h.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc[:, indices] + self.b_enc[indices]
        return pre * (pre > self.threshold[indices])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(h))

    def config(self) -> dict:
        return {"d_model": self.d_model, "d_sae": self.d_sae, "k": self.k}


# ---- activations ------------------------------------------------------------------------------------------------


def real_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Non-padding positions other than each line's first (left or right padding alike)."""
    mask = attention_mask.bool()
    first = mask & (mask.long().cumsum(dim=1) == 1)
    return mask & ~first


class _Captured(Exception):
    """Raised by the capture hook: the layers after the SAE's are not needed."""


@torch.no_grad()
def collect_activations(
    model, tok, texts: list[str], layer: int, max_len: int = 64, batch_size: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer `layer`'s output at every real token of `texts`: (tokens, d_model) float32 on the model's device,
    and the number of real tokens of each text (to split the rows back into lines)."""
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(hidden_of(output))
        raise _Captured

    acts, lengths = [], []
    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        for start in range(0, len(texts), batch_size):
            batch = to_device(encode(tok, texts[start : start + batch_size], max_len), model.device)
            try:
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
            except _Captured:
                pass
            keep = real_positions(batch["attention_mask"])
            acts.append(captured.pop()[keep].float())
            lengths.append(keep.sum(dim=1))
    finally:
        handle.remove()
    return torch.cat(acts), torch.cat(lengths).cpu()


def per_sequence(acts: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.split(acts, lengths.tolist()))


# ---- training ---------------------------------------------------------------------------------------------------


def _split_texts(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n = max(1, int(len(texts) * fraction))
    return [texts[i] for i in order[n:]], [texts[i] for i in order[:n]]


@torch.no_grad()
def _init(sae: SparseAutoencoder, acts: torch.Tensor, generator: torch.Generator) -> None:
    w = torch.randn(sae.d_sae, sae.d_model, generator=generator, device=acts.device)
    sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
    sae.W_enc.copy_(sae.W_dec.T)
    sae.b_dec.copy_(acts.mean(dim=0))  # Gao et al. use the geometric median; the mean is close on this data


@torch.no_grad()
def _constrain_decoder(sae: SparseAutoencoder) -> None:
    """Unit-norm decoder rows: drop the gradient along each row, then renormalise after the step."""
    w, g = sae.W_dec, sae.W_dec.grad
    g -= (g * w).sum(dim=1, keepdim=True) * w


def _batch_topk(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k × batch largest activations of the whole batch (so L0 varies per token around k), and the smallest
    value kept."""
    z = pre.relu()
    kth = z.detach().flatten().kthvalue(z.numel() - k * len(z) + 1).values
    return z * (z >= kth), kth


def _aux_loss(sae, pre, err, dead: torch.Tensor, k_aux: int) -> torch.Tensor:
    """AuxK (Gao et al.): the dead features' top k_aux reconstruct the residual error, so they get gradient."""
    masked = pre.masked_fill(~dead, float("-inf"))
    top = masked.topk(min(k_aux, int(dead.sum())), dim=-1)
    z_aux = torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
    return (err.detach() - z_aux @ sae.W_dec).pow(2).sum(-1).mean()


@torch.no_grad()
def evaluate_sae(sae: SparseAutoencoder, acts: torch.Tensor, chunk: int = 8192) -> dict[str, float]:
    """Fraction of variance explained, mean L0 and the share of features never active, on `acts`."""
    sq_err = l0 = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=acts.device)
    for part in torch.split(acts, chunk):
        z = sae.encode(part)
        sq_err += float((part - sae.decode(z)).pow(2).sum())
        l0 += float((z > 0).sum())
        fired |= (z > 0).any(dim=0)
    total = float((acts - acts.mean(dim=0)).pow(2).sum())
    return {"fve": 1.0 - sq_err / total, "l0": l0 / len(acts), "dead_share": 1.0 - float(fired.float().mean())}


def train_sae(
    model, tok, texts: list[str], layer: int, d_sae: int | None = None, k: int = 32, steps: int = 2000,
    lr: float = 1e-3, seed: int = 0, max_len: int = 64, batch_tokens: int = 1024, heldout_fraction: float = 0.1,
) -> tuple[SparseAutoencoder, dict]:
    """A BatchTopK SAE (mean L0 k) on layer `layer`'s output over `texts`, returned as its JumpReLU (eval mode, no
    grad), and a report: FVE, mean L0 and dead-feature share on held-out activations (a share of `texts` never
    trained on), θ, seconds."""
    started = time.perf_counter()
    train_texts, held_texts = _split_texts(texts, heldout_fraction, seed)
    acts, _ = collect_activations(model, tok, train_texts, layer, max_len)
    held, _ = collect_activations(model, tok, held_texts, layer, max_len)
    collect_s = time.perf_counter() - started

    generator = torch.Generator(device=acts.device).manual_seed(seed)
    sae = SparseAutoencoder(acts.shape[1], d_sae).to(acts.device)
    _init(sae, acts, generator)
    # MSE in units of the data's variance, so lr and the AuxK weight do not depend on the residual stream's scale.
    scale = float((acts - acts.mean(dim=0)).pow(2).sum(-1).mean())
    opt = torch.optim.Adam(sae.parameters(), lr=lr, eps=6.25e-10)
    idle = torch.zeros(sae.d_sae, device=acts.device)  # tokens since each feature last fired
    dead_after, k_aux = 20 * batch_tokens, max(sae.d_model // 2, 1)
    # The smallest kept activation of each step over the second half of training, when the encoder has settled: θ is
    # their mean. Written into one preallocated tensor: a list of 0-d tensors, one allocated per step between each
    # step's large temporaries, fragmented the allocator's heap so that a long training held gigabytes after it.
    kept_minimum = torch.zeros(steps - steps // 2, device=acts.device)
    for step in range(steps):
        x = acts[torch.randint(len(acts), (batch_tokens,), generator=generator, device=acts.device)]
        pre = sae.pre_activations(x)
        z, kth = _batch_topk(pre, k)
        if step >= steps // 2:
            kept_minimum[step - steps // 2] = kth
        err = x - sae.decode(z)
        loss = err.pow(2).sum(-1).mean()
        dead = idle > dead_after
        if dead.any():
            loss = loss + _aux_loss(sae, pre, err, dead, k_aux) / 32
        opt.zero_grad(set_to_none=True)
        (loss / scale).backward()
        _constrain_decoder(sae)
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True)
            idle += batch_tokens
            idle[(z > 0).any(dim=0)] = 0
    sae.threshold.fill_(float(kept_minimum.mean()))
    sae.eval().requires_grad_(False)
    report = evaluate_sae(sae, held) | {
        "batch_k": k, "theta": float(sae.threshold[0]),
        "train_tokens": len(acts), "heldout_tokens": len(held), "collect_seconds": collect_s,
        "train_seconds": time.perf_counter() - started, "layer": layer, **sae.config(),
    }
    return sae, report


# ---- cache ------------------------------------------------------------------------------------------------------


def _model_fingerprint(model_path: str) -> list:
    """The model's identity: config.json's digest and the weight files' sizes and mtimes (hashing gigabytes of
    weights per trial would cost more than it protects); a hub name stands for itself."""
    path = Path(model_path)
    if not path.is_dir():
        return [model_path]
    config = path / "config.json"
    weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    return [
        str(path.resolve()),
        hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
        [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights],
    ]


def sae_texts(data: StudyData) -> list[str]:
    """DSG trains its SAE on general text: here the forget and retain training lines together."""
    return data.forget.train + data.retain.train


def sae_cache_key(model_path: str, layer: int, config: SAEConfig, texts: list[str]) -> str:
    texts_digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    payload = {"format": FORMAT_VERSION, "model": _model_fingerprint(model_path), "layer": layer,
               "config": asdict(config), "texts": texts_digest}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def save_sae(sae: SparseAutoencoder, folder: Path, report: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({n: t.detach().contiguous().cpu() for n, t in sae.state_dict().items()}, folder / "sae.safetensors")
    (folder / "sae_config.json").write_text(json.dumps(sae.config()))
    (folder / "report.json").write_text(json.dumps(report, indent=2))


def load_sae(folder: Path, device="cpu") -> tuple[SparseAutoencoder, dict]:
    from safetensors.torch import load_file

    sae = SparseAutoencoder(**json.loads((folder / "sae_config.json").read_text()))
    sae.load_state_dict(load_file(folder / "sae.safetensors"))
    return sae.to(device).eval().requires_grad_(False), json.loads((folder / "report.json").read_text())


def default_cache_root() -> Path:
    return cache_root() / "sae"


def load_or_train_sae(
    model_path: str, tok, data: StudyData, layer: int, config: SAEConfig = SAEConfig(),
    cache_root: Path | None = None, model=None,
) -> tuple[SparseAutoencoder, dict, bool]:
    """The SAE for (model, layer, config, training lines), trained at most once per cache: concurrent trials on a
    node wait on a file lock for one training. Returns (sae, report, cache_hit). `model` (already loaded from
    `model_path`) saves loading it again on a miss; the SAE lands on its device."""
    texts = sae_texts(data)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    key = sae_cache_key(model_path, layer, config, texts)
    folder = root / key
    device = model.device if model is not None else "cpu"
    if (folder / "report.json").exists():
        return (*load_sae(folder, device), True)
    with file_lock(root / f"{key}.lock"):
        if (folder / "report.json").exists():
            return (*load_sae(folder, device), True)
        remove_leftovers(root, key, log=lambda *a: None)  # of trainings of this SAE that were killed
        if model is None:
            from trainables.model.loading import load_model

            model = load_model(model_path)
        cfg = asdict(config)
        sae, report = train_sae(model, tok, texts, layer, **cfg)
        tmp = building_folder(root, key)
        try:
            save_sae(sae, tmp, report | {"config": cfg, "model": model_path})
            if folder.exists():  # left by a training that died before writing its report
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return (*load_sae(folder, model.device), False)


# ---- pretrained (SAELens format) --------------------------------------------------------------------------------


def load_saelens(path: str | Path, device="cpu") -> SparseAutoencoder:
    """An SAELens folder (cfg.json + sae_weights.safetensors) as a SparseAutoencoder, without sae_lens.

    Reads "standard" (ReLU), "jumprelu" (its threshold) and "topk" SAEs (k from `k`, or `activation_fn_kwargs` in
    older configs). An SAE that does not subtract b_dec before encoding has it folded into b_enc, which gives the
    same encoder. Activation normalisation other than "none" is refused rather than silently ignored.
    """
    from safetensors.torch import load_file

    path = Path(path)
    cfg = json.loads((path / "cfg.json").read_text())
    weights = load_file(path / "sae_weights.safetensors")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"{path}: normalize_activations={cfg['normalize_activations']!r} is not supported")
    topk = cfg.get("architecture") == "topk" or cfg.get("activation_fn_str") == "topk"
    k = (cfg.get("k") or cfg.get("activation_fn_kwargs", {}).get("k")) if topk else None
    sae = SparseAutoencoder(int(cfg["d_in"]), int(cfg["d_sae"]), k)
    state = {name: weights[name].float() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if not cfg.get("apply_b_dec_to_input", True):
        state["b_enc"] = state["b_enc"] + state["b_dec"] @ state["W_enc"]
    if k is None:
        state["threshold"] = weights["threshold"].float() if "threshold" in weights else torch.zeros(sae.d_sae)
    sae.load_state_dict(state)
    return sae.to(device).eval().requires_grad_(False)


# ---- feature selection (DSG) ------------------------------------------------------------------------------------


@dataclass
class SelectedFeatures:
    """DSG's selected features, best first, with what the gates and the report need about each."""

    indices: torch.Tensor  # (n,) long
    forget_importance: torch.Tensor  # (mean activation on forget)²
    retain_importance: torch.Tensor  # (mean activation on retain)²
    typical: torch.Tensor  # mean of each feature's non-zero activations on forget: the clamp's unit

    def __len__(self) -> int:
        return len(self.indices)


@torch.no_grad()
def _feature_stats(sae, acts: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per feature over the rows of acts: mean activation, summed activation, number of rows where it is active."""
    total = torch.zeros(sae.d_sae, device=acts.device)
    count = torch.zeros(sae.d_sae, device=acts.device)
    for part in torch.split(acts, chunk):
        z = sae.encode(part)
        total += z.sum(dim=0)
        count += (z > 0).sum(dim=0)
    return total / max(len(acts), 1), total, count


def select_features(
    sae, acts_forget: torch.Tensor, acts_retain: torch.Tensor, percentile: float = 90, n_features: int = 20
) -> SelectedFeatures:
    """DSG's selection: importance = (mean activation)² on forget and on retain (the squared-activation form of
    their Fisher-information score); keep features whose forget/retain importance ratio is at or above the
    ratio's `percentile` over all features, then the top `n_features` of those by forget importance (features
    never active on forget are never selected)."""
    mean_f, total_f, count_f = _feature_stats(sae, acts_forget)
    mean_r, _, _ = _feature_stats(sae, acts_retain)
    imp_f, imp_r = mean_f.pow(2), mean_r.pow(2)
    ratio = imp_f / (imp_r + 1e-21)  # the official code's epsilon: never-on-retain features get huge ratios
    eligible = (ratio >= torch.quantile(ratio, percentile / 100)) & (imp_f > 0)
    order = torch.argsort(imp_f.masked_fill(~eligible, -1.0), descending=True)
    indices = order[: min(n_features, int(eligible.sum()))]
    return SelectedFeatures(
        indices=indices,
        forget_importance=imp_f[indices],
        retain_importance=imp_r[indices],
        typical=total_f[indices] / count_f[indices],
    )


@torch.no_grad()
def any_active(sae, features: SelectedFeatures, acts: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Per row of acts: is any selected feature active (> 0)?"""
    parts = torch.split(acts, chunk)
    return torch.cat([(sae.encode_features(part, features.indices) > 0).any(dim=-1) for part in parts])


def activation_rates(sae, features: SelectedFeatures, acts: torch.Tensor) -> float:
    """Share of tokens on which any selected feature is active."""
    return float(any_active(sae, features, acts).float().mean()) if len(acts) else 0.0


def sequence_shares(sae, features: SelectedFeatures, sequences: list[torch.Tensor]) -> torch.Tensor:
    """Per line (rows of one line's real tokens): the share of its tokens with any selected feature active,
    DSG's trigger statistic."""
    lengths = torch.tensor([len(s) for s in sequences], device=sequences[0].device)
    active = any_active(sae, features, torch.cat(sequences)).float()
    line = torch.repeat_interleave(torch.arange(len(sequences), device=active.device), lengths)
    counts = torch.zeros(len(sequences), device=active.device).index_add_(0, line, active)
    return (counts / lengths.clamp_min(1)).cpu()
