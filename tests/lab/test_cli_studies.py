"""``initlab studies`` lists the built-in studies, their claims and sizes."""

from initlab.cli import main
from initlab.lab.config import expand
from initlab.lab.tour import BUILTIN_STUDIES, builtin_study


def test_studies_lists_every_builtin_study_with_its_run_counts(capsys):
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN_STUDIES:
        assert f"│ {name} " in out
    pairing_counts = [len(expand(builtin_study("pairing", size))) for size in ("full", "tour", "tiny")]
    pairing_line = next(line for line in out.splitlines() if line.startswith("│ pairing "))
    cells = [cell.strip() for cell in pairing_line.split("│")]
    assert cells[3:6] == [str(count) for count in pairing_counts]


def test_studies_files_shows_where_each_file_is(capsys):
    assert main(["studies", "--files"]) == 0
    assert "symmetry.toml" in capsys.readouterr().out.replace("\n", "").replace("│", "").replace(" ", "")
