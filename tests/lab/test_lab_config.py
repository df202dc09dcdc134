"""Study validation: every bad config is an InitlabError naming the field, the value and what was expected."""

import pytest

from initlab.errors import InitlabError
from initlab.lab.config import expand, group_key, load_study, run_key

BASE = {"name": "s", "model": {"weight_init": "glorot_normal"}}


def _study(**overrides):
    data = {**BASE}
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


@pytest.mark.parametrize("data,expected", [
    (_study(colour="red"), r"colour: unknown key \(value 'red'\); allowed keys here: dataset, model, training"),
    (_study(model={"widht": 10}), r"model.widht: unknown key \(value 10\); allowed keys here: kind, depth, width"),
    (_study(dataset={"name": "digits", "n_train": 5}),
     r"dataset.n_train: unknown key \(value 5\); allowed keys here: name, standardize, test_fraction"),
    (_study(model={"width": "wide"}), r"model.width='wide' is invalid; Input should be a valid integer"),
    (_study(model={"width": -3}), r"model.width=-3 is invalid; Input should be greater than or equal to 1"),
    (_study(training={"l2": -0.1}), r"training.l2=-0.1 is invalid; Input should be greater than or equal to 0"),
    (_study(model={"activation": "swoosh"}), r"model.activation='swoosh' is invalid; .*expected one of linear, relu"),
    (_study(model={"weight_init": "glorot_gaussian"}),
     r"model.weight_init='glorot_gaussian' is invalid; .*unknown scheme 'glorot_gaussian'"),
    (_study(model={"bias_init": {"scheme": "normal", "sd": 1}}),
     r"model.bias_init=\{'scheme': 'normal', 'sd': 1\} is invalid; .*unknown argument\(s\) sd"),
    (_study(training={"optimizer": "rmsprop"}),
     r"training.optimizer='rmsprop' is invalid; Input should be 'sgd', 'momentum' or 'adam'"),
    (_study(dataset={"name": "imagenet"}), r"dataset=.*'imagenet'.*does not match any of the expected tags: 'mnist1d'"),
    (_study(training={"steps": 2.5}), r"training.steps=2.5 is invalid; Input should be a valid integer"),
    (_study(model={"kernel_size": 4}), r"model.kernel_size=4 is invalid; expected an odd kernel size"),
    (_study(model={"bias_init": "auto"}), r"model.bias_init='auto' is invalid; 'auto' is only accepted for model.weight_init"),
    (_study(metrics={"keep": ["test_acc"]}), r"metrics.keep.0='test_acc' is invalid; Input should be 'train_loss'"),
    (_study(claim={"name": "xavier_wins"}), r"claim.name='xavier_wins' is invalid; expected one of .*compare"),
    (_study(name="has space"), r"name='has space' is invalid; expected a non-empty name"),
    (_study(grid={"model.width": []}), r"grid.'model.width'=\[\] is invalid; expected a non-empty list"),
    (_study(grid={"model.colour": [1]}), r"grid key 'model.colour' is invalid; model has no field 'colour'"),
    (_study(grid={"optimizer.lr": [1]}), r"grid key 'optimizer.lr' is invalid; expected SECTION.FIELD"),
    (_study(grid={"model.width": [8, -1]}),
     r"grid point \{'model.width': -1\}: model.width=-1 is invalid; Input should be greater than or equal to 1"),
    (_study(grid={"model.weight_init.std": [1.0]}),
     r"grid point \{'model.weight_init.std': 1.0\}: model.weight_init=\{.*\} is invalid; .*unknown argument\(s\) .*std"),
    (_study(cases=[{"training.lr": 0}]), r"cases\[0\] grid point \{'training.lr': 0\}: training.lr=0 is invalid"),
    ({"model": {"weight_init": "zeros"}}, r"name: required field is missing"),
])
def test_bad_study_names_the_field(data, expected):
    with pytest.raises(InitlabError, match=expected):
        load_study(data)


def test_several_errors_are_all_listed():
    with pytest.raises(InitlabError, match=r"2 errors:\n  model.depth=0 .*\n  training.lr=-1"):
        load_study(_study(model={"depth": 0}, training={"lr": -1}))


def test_toml_file_errors(tmp_path):
    with pytest.raises(InitlabError, match=r"missing.toml: study file not found"):
        load_study(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[model\n')
    with pytest.raises(InitlabError, match=r"broken.toml: not valid TOML"):
        load_study(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "x"\n[training]\nlearning_rate = 0.1\n')
    with pytest.raises(InitlabError, match=r"unknown.toml: training.learning_rate: unknown key"):
        load_study(unknown)


def test_grid_and_cases_expand_in_order_and_deduplicate():
    study = load_study(_study(
        grid={"training.seed": [0, 1], "model.weight_init.scale": [1.0, 2.0]},
        model={"weight_init": "variance_scaling"},
        cases=[{"model.activation": "tanh"}, {"model.activation": "relu", "model.depth": 3}],
    ))
    runs = expand(study)
    assert len(runs) == 8
    assert runs[0].point == {"model.activation": "tanh", "training.seed": 0, "model.weight_init.scale": 1.0}
    assert runs[1].config.model.weight_init["scale"] == 2.0
    assert runs[7].config.model.depth == 3 and runs[7].config.model.activation == "relu"
    assert len({run.key for run in runs}) == 8
    # seeds and init scales share a stacked model; the two cases do not
    assert len({group_key(run.config) for run in runs}) == 2
    # a grid that repeats a point yields one run
    assert len(expand(load_study(_study(grid={"training.seed": [0, 0, 1]})))) == 2


def test_run_key_is_stable_and_tracks_the_resolved_config():
    first = expand(load_study(_study(model={"activation": "swish"})))[0]
    alias = expand(load_study(_study(model={"activation": "silu"})))[0]
    other = expand(load_study(_study(model={"activation": "silu", "width": 99})))[0]
    assert first.key == alias.key == run_key(alias.config)
    assert other.key != first.key
    assert first.config.model.activation == "silu"
