"""One rule for what a trial ran: the search space samples it, and the front read back and the mmie.py command see
the same adapter, retain objective and knobs (trainables.methods.registry.Variant resolves them for all three)."""

import optuna

from study.config import parse_config
from study.results import mmie_command
from study.results.front import TrialRecord
from study.space import define_by_run
from trainables.methods.registry import (
    ADAPTERS,
    RETAIN_OBJECTIVES,
    VARIANTS,
    get_variant,
)
from trainables.trial.status import TrialStatus

CHOICES = ("variant", "adapter", "retain_objective")


def test_a_sampled_trial_reads_back_with_the_pieces_and_knobs_it_was_sampled_with():
    names = [*sorted(VARIANTS), "ga+dsg"]  # a training variant with its own adapter (sine_bounded), gate-only ones
    cfg = parse_config({"variants": names, "adapters": ["lora", "loreft"], "retain_objectives": ["kl", "nll"],
                        "search": {"space": {"layers": {"searched": True}, "rank": {"searched": True}}}})
    space = define_by_run(cfg)
    for name in names:
        variant = get_variant(name)
        for seed in range(2):  # a study each: one Optuna study takes one set of choices per parameter name
            sampler = optuna.samplers.PartialFixedSampler({"variant": name}, optuna.samplers.RandomSampler(seed))
            trial = optuna.create_study(directions=["maximize"] * 3, sampler=sampler).ask()
            params = {**space(trial), **trial.params}  # what the trainable logs: sampled and fixed values
            record = TrialRecord("run", "trial", TrialStatus.COMPLETED, params, {}, False, None)
            assert {k.name for k in record.knob_specs()} == set(params) - set(CHOICES), name
            pieces = {registry.kind: piece for registry, piece in mmie_command.trial_pieces(variant, params)}
            if variant.trains:
                assert pieces[ADAPTERS.kind] == record.adapter == variant.adapter_of(params), name
                assert pieces[RETAIN_OBJECTIVES.kind] == variant.retain_objective_of(params), name
                assert ("adapter" in params) == (variant.adapter is None), name
            else:
                assert not {"adapter", "retain_objective"} & set(params), name
