"""The driver's old module names, for one release (see trainables.moved): Ray pickles the study's scheduler and
callbacks with its saved state, under the modules they were defined in."""

from trainables.moved import install

STUDY_MOVES = {
    "study.mlflow_callback": "study.tracking.callback",
    "study.pareto_tracking": "study.tracking.front_recorder",
    "study.mmie_tracking": "study.tracking.gates_recorder",
    "study.mlflow_ui": "study.tracking.ui_link",
    "study.front": "study.results.front",
    "study.export": "study.results.export",
    "study.report": "study.results.ladder_report",
    "study.mmie": "study.results.mmie_command",
    "study.robustness": "study.oracle",
}

install(STUDY_MOVES)
