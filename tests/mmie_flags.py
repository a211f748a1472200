"""mmie.py's command line as data, copied from the published script's parser
(docs/mmie.md), and an argparse parser built from it with prefix matching off, so an abbreviated or unknown flag fails
as a misspelling would. Not the user's code: a model of its parser, to check that exports parse."""

import argparse

S, I, F = str, int, float
ST = "store_true"
# (flag, type or ST, default, nargs, choices)
FLAGS = [
    # Data
    ("--model", S, None, None, None), ("--forget", S, None, None, None), ("--retain", S, None, None, None),
    ("--mixed", S, None, None, None), ("--xlang", S, [], "+", None), ("--adversarial", S, "adversarial.jsonl", None, None),
    # Training
    ("--seeds", I, [42, 43, 44], "+", None), ("--rank", I, 8, None, None), ("--lora_steps", I, 500, None, None),
    ("--reft_steps", I, 500, None, None), ("--forget_obj", S, "ga", None, ["ga", "npo"]),
    ("--reft_gated", ST, False, None, None), ("--reft_gate_l1", F, 1e-3, None, None),
    ("--reft_negative", ST, False, None, None), ("--use_cosine_lr", ST, True, None, None),
    ("--early_stop_patience", I, 0, None, None), ("--forget_reweight", ST, False, None, None),
    ("--use_curriculum", ST, False, None, None), ("--curriculum_stages", F, [0.33, 0.66], 2, None),
    ("--bounded_forget_bound", F, 10.0, None, None), ("--dual_optimizer", ST, False, None, None),
    ("--lr_forget", F, 0.0, None, None), ("--lr_retain", F, 0.0, None, None),
    # Layers
    ("--select_top_k", I, 3, None, None), ("--min_layer", I, 2, None, None), ("--force_layers", I, None, "+", None),
    ("--select_mode", S, "semantic", None, ["contrast", "similarity", "semantic"]),
    ("--script_blind_selection", ST, True, None, None), ("--no_script_blind_selection", ST, False, None, None),
    ("--stability_select", I, 5, None, None), ("--stability_seeds", I, None, "+", None),
    ("--stability_strategy", S, "vote", None, ["vote", "average"]), ("--selection_seed", I, 42, None, None),
    ("--sample_cap", I, 1000, None, None), ("--use_anc", ST, True, None, None),
    # Judge
    ("--judge_assist_selection", ST, False, None, None), ("--judge_cap", I, 24, None, None),
    ("--judge_pool", I, 6, None, None), ("--judge_scale", F, 0.85, None, None), ("--judge_alpha", F, 0.5, None, None),
    ("--judge_beta", F, 0.5, None, None), ("--judge_model", S, "gemini-2.5-flash", None, None),
    ("--judge_timeout", F, 15.0, None, None),
    # SAE
    ("--train_sae_steps", I, 5000, None, None), ("--sae_k", I, 32, None, None), ("--sae_expansion", I, 16, None, None),
    ("--sae_gate", ST, False, None, None), ("--sae_gate_alpha", F, 0.35, None, None), ("--sae_gate_topk", I, 32, None, None),
    ("--sae_feature_picker", S, "grad", None, ["activation", "semantic", "grad"]),
    ("--semantic_features", ST, False, None, None), ("--semantic_tau", F, 0.10, None, None),
    ("--dynamic_gate", ST, False, None, None), ("--semantic_dynamic_gate", ST, False, None, None),
    ("--dsg", ST, False, None, None), ("--dsg_threshold", F, 0.5, None, None), ("--script_scrub", ST, False, None, None),
    ("--scrub_k", I, 1, None, None), ("--unlearn_rank", I, 16, None, None), ("--sae_decorrel", ST, False, None, None),
    ("--sae_decorrel_lambda", F, 0.01, None, None), ("--sae_quality_eval", ST, False, None, None),
    ("--sae_eval_cap", I, 256, None, None),
    # Backends
    ("--sae_backend", S, "custom", None, ["custom", "sae_lens"]), ("--reft_backend", S, "custom", None, ["custom", "pyreft"]),
    ("--sae_lens_dir", S, None, None, None), ("--sae_lens_release", S, None, None, None),
    ("--sae_lens_arch", S, "matryoshka-topk", None, None), ("--sae_lens_training_tokens", I, 2_000_000, None, None),
    ("--sae_lens_hook_template", S, "blocks.{layer}.hook_resid_pre", None, None),
    # Evaluation
    ("--max_len", I, 256, None, None), ("--probe_layers", I, [8, 16, 24], "+", None), ("--use_xlmr", ST, False, None, None),
    ("--use_gemini", ST, False, None, None), ("--use_fasttext", ST, False, None, None),
    ("--report_token_kl", ST, False, None, None), ("--no_token_kl", ST, False, None, None), ("--no_mia", ST, False, None, None),
    ("--es_romanized", ST, False, None, None), ("--report_comprehension", ST, False, None, None),
    ("--comprehension_cap", I, 80, None, None), ("--actpert_audit", ST, False, None, None),
    ("--actpert_amp", F, 0.1, None, None),
    ("--forget_script", S, "both", None, ["both", "devanagari", "romanized"]),
    ("--eval_script", S, "both", None, ["both", "devanagari", "romanized"]),
    # Acceptance gates
    ("--gate_es_forget_ratio", F, 0.5, None, None), ("--gate_es_mixed_ratio", F, 0.7, None, None),
    ("--gate_ppl_ratio", F, 1.10, None, None),
    # Run
    ("--device", S, "cuda", None, None), ("--out", S, "eval_report.json", None, None), ("--ckpt_dir", S, ".", None, None),
    ("--hparam_search", ST, False, None, None), ("--hparam_trials", I, 8, None, None), ("--hparam_seed", I, 0, None, None),
    ("--auto", ST, False, None, None), ("--auto_plots", ST, False, None, None), ("--auto_bundle", ST, False, None, None),
    ("--exit_after_sae", ST, False, None, None), ("--no_save_activations", ST, False, None, None),
    ("--no_quantization", ST, False, None, None), ("--print_layer_scores", ST, True, None, None),
    ("--log_verbose", ST, True, None, None),
]
REQUIRED = {"--model", "--forget", "--retain", "--mixed"}


class ParseError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raise instead of printing usage and exiting
        raise ParseError(message)


def mmie_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mmie.py", allow_abbrev=False)
    for flag, kind, default, nargs, choices in FLAGS:
        if kind == ST:
            parser.add_argument(flag, action="store_true", default=default)
        else:
            parser.add_argument(flag, type=kind, default=default, nargs=nargs, choices=choices,
                                required=flag in REQUIRED)
    return parser
