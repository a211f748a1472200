"""scripts/test.sh's two workers keep the tests that share a module-scoped fixture on one worker
(tests/conftest.py): checked on tests/test_mmie_metrics.py, whose `lid` fixture is module-scoped, run by a real
pytest-xdist in a subprocess. Under pytest 9.2 with pytest-xdist 3.8 the grouping was silently off (each such
fixture was built on both workers) until conftest copied xdist's group suffix into the ids pytest reads."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # two workers' start-up and collection: 10-30 s
def test_a_modules_shared_fixture_keeps_its_tests_on_one_worker():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
         "-o", "addopts=", "-m", "not slow", "tests/test_mmie_metrics.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d)\] .*PASSED tests/test_mmie_metrics.py::(\w+)(@\S+)?", out.stdout, re.M)
    with_lid = {"test_es_is_how_early_hindi_starts", "test_script_guard_counts_the_whole_block_as_mmie_does",
                "test_ensemble_voters_and_the_langid_shortcut"}
    grouped = [(worker, suffix) for worker, name, suffix in ran if name in with_lid]
    assert len(grouped) == 3 and len(set(grouped)) == 1 and grouped[0][1] == "@test_mmie_metrics", ran
