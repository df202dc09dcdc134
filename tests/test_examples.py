"""The scripts in examples/ run as a user would run them, and print what they promise."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

PROMISED_OUTPUT = {
    "audit_and_theory.py": ["overall: vanishing", "after the auto plan: healthy", "phase = critical"],
    "init_and_lsuv.py": ["he_normal", "glorot_normal"],
}
PROMISED_FILES = {"audit_and_theory.py": ["audit-before.html", "audit-after.html"]}


@pytest.mark.parametrize("script", sorted(path.name for path in EXAMPLES.glob("*.py")))
def test_example_runs_and_prints_what_it_promises(script, tmp_path):
    completed = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    for text in PROMISED_OUTPUT.get(script, []):
        assert text in completed.stdout, text
    for name in PROMISED_FILES.get(script, []):
        assert (tmp_path / name).stat().st_size > 0, name
