"""The ``initlab runs list`` table shows what tells runs apart."""

import io

from initlab.report.runs import differing_keys, print_runs


def _row(key, study, point):
    return {"key": key, "study": study, "status": "done", "point": point, "summary": {"steps_done": 10},
            "duration": 1.0}


def test_runs_differing_only_inside_a_scheme_are_told_apart():
    rows = [
        _row("a" * 16, "edge-of-chaos", {"model.weight_init": {"scheme": "normal", "std": 1.0},
                                         "model.depth": 10}),
        _row("b" * 16, "edge-of-chaos", {"model.weight_init": {"scheme": "normal", "std": 1.3266},
                                         "model.depth": 10}),
    ]
    assert differing_keys(rows) == {"edge-of-chaos": ["model.weight_init"]}
    out = io.StringIO()
    print_runs(rows, out)
    text = out.getvalue()
    assert "weight_init=normal(std=1)" in text
    assert "weight_init=normal(std=1.327)" in text
    assert "depth=10" not in text  # the same in every run of the study


def test_a_study_with_one_run_shows_its_whole_point():
    rows = [_row("c" * 16, "single", {"training.seed": 3})]
    out = io.StringIO()
    print_runs(rows, out)
    assert "seed=3" in out.getvalue()
