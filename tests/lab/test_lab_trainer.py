"""Models and the batched trainer: stacked == plain nn.Module, batched == alone, metrics, divergence."""

import math

import numpy as np
import pytest
import torch

import initlab
from initlab.errors import InitlabError
from initlab.lab.config import RunConfig
from initlab.lab.models import ModelSpec, StackedModel, TorchModel, stack_to_module
from initlab.lab.trainer import (
    BatchSampler,
    as_tensors,
    dataset_for,
    initialise_run,
    loss_per_run,
    model_spec,
    train_group,
)


def _config(**sections):
    base = {"dataset": {"name": "mnist1d", "n_train": 512, "n_test": 256},
            "model": {"depth": 2, "width": 32, "activation": "tanh", "weight_init": "glorot_normal"},
            "training": {"steps": 30, "log_every": 10, "batch_size": 64, "probe_size": 64}}
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values}
    return RunConfig.model_validate(base)


@pytest.mark.parametrize("kind,norm", [("mlp", "none"), ("mlp", "batch"), ("resmlp", "layer"),
                                       ("cnn1d", "batch"), ("cnn1d", "layer")])
def test_stacked_forward_equals_plain_module(kind, norm):
    spec = ModelSpec(kind=kind, depth=2, width=8, activation="tanh", input_shape=(2, 12),
                     num_outputs=3, norm=norm, kernel_size=3)
    config = _config(model={"kind": kind, "norm": norm})
    model = StackedModel.empty(spec, 3, torch.float64)
    x = torch.randn(3, 5, 2, 12, dtype=torch.float64)
    for run in range(3):
        initialise_run(model, run, config.model_copy(update={"training": config.training.model_copy(
            update={"seed": run})}), x[run])
    outputs = model.forward(x, train=True, update_stats=False)
    for run in range(3):
        module = stack_to_module(model, run, TorchModel(spec).double()).train()
        torch.testing.assert_close(outputs[run], module(x[run]), rtol=1e-10, atol=1e-10)


def test_initial_weights_depend_only_on_seed_and_name():
    config = _config()
    spec = model_spec(config, dataset_for(config))
    model = StackedModel.empty(spec, 2, torch.float32)
    probe = torch.zeros(4, 1, 40)
    initialise_run(model, 0, config, probe)
    initialise_run(model, 1, config.model_copy(update={"training": config.training.model_copy(
        update={"seed": 5})}), probe)
    expected = initlab.glorot_normal().sample((32, 32), seed=5, name="layers.1.weight")
    np.testing.assert_array_equal(model.params["layers.1.weight"][1].numpy(), expected)
    assert not torch.equal(model.params["layers.1.weight"][0], model.params["layers.1.weight"][1])
    assert torch.count_nonzero(model.params["layers.1.bias"]) == 0


def _reference_run(config: RunConfig):
    """Train one run alone with a plain PyTorch loop (nn.Module + torch.optim); its logged metrics."""
    dataset = dataset_for(config)
    spec = model_spec(config, dataset)
    x_train, y_train, x_test, y_test = as_tensors(dataset, spec, torch.float32)
    module = TorchModel(spec)
    for name, param in module.named_parameters():
        scheme = config.model.bias_init if name.endswith("bias") else config.model.weight_init
        initlab.schemes.from_dict(scheme).init_(param, seed=config.training.seed, name=name)
    training = config.training
    weights = [p for n, p in module.named_parameters() if n.endswith("weight")]
    others = [p for n, p in module.named_parameters() if not n.endswith("weight")]
    groups = [{"params": weights, "weight_decay": training.l2 or training.weight_decay},
              {"params": others, "weight_decay": 0.0}]
    if training.optimizer == "adam":
        kind = torch.optim.AdamW if training.weight_decay else torch.optim.Adam
        optimizer = kind(groups, lr=training.lr, betas=training.betas, eps=training.eps)
    else:
        momentum = training.momentum if training.optimizer == "momentum" else 0.0
        optimizer = torch.optim.SGD(groups, lr=training.lr, momentum=momentum)
    sampler = BatchSampler(training.seed, len(x_train), training.batch_size)
    logged = []
    for step in range(training.steps + 1):
        if step % training.log_every == 0:
            with torch.no_grad():
                train_loss = torch.nn.functional.cross_entropy(module(x_train), y_train).item()
                test_accuracy = (module(x_test).argmax(1) == y_test).double().mean().item()
                norm = math.sqrt(sum(float((w ** 2).sum()) for w in weights))
            logged.append((step, train_loss, test_accuracy, norm))
        if step == training.steps:
            break
        indices = sampler.next()
        loss = torch.nn.functional.cross_entropy(module(x_train[indices]), y_train[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return logged


def _assert_matches_reference(configs):
    results = train_group([(f"run{index}", config) for index, config in enumerate(configs)])
    for config, result in zip(configs, results):
        history = result.history
        for index, (step, train_loss, test_accuracy, norm) in enumerate(_reference_run(config)):
            assert history["step"][index] == step
            assert history["train_loss"][index] == pytest.approx(train_loss, rel=2e-4, abs=2e-5)
            assert history["weight_norm"][index] == pytest.approx(norm, rel=1e-4)
            # accuracy counts argmax flips: allow one example of 256 to flip on rounding
            assert abs(history["test_accuracy"][index] - test_accuracy) <= 1 / 256 + 1e-12


def test_eight_runs_batched_equal_eight_runs_alone_momentum_l2():
    schemes = ["glorot_normal", {"scheme": "he_normal"}, {"scheme": "normal", "std": 0.05},
               {"scheme": "orthogonal"}]
    configs = [
        _config(model={"weight_init": schemes[index % 4], "bias_init": {"scheme": "normal", "std": 0.1}},
                training={"optimizer": "momentum", "seed": index, "lr": 0.02 * (1 + index % 3),
                          "momentum": 0.8 + 0.02 * index, "l2": 1e-3 * (index % 2)})
        for index in range(8)
    ]
    _assert_matches_reference(configs)


def test_adam_with_l2_penalty_and_with_decoupled_decay_equal_torch_adam_and_adamw():
    configs = [
        _config(training={"optimizer": "adam", "lr": 3e-3, "seed": 1, "l2": 1e-2}),
        _config(training={"optimizer": "adam", "lr": 3e-3, "seed": 2, "weight_decay": 0.1,
                          "betas": [0.8, 0.99]}),
        _config(training={"optimizer": "adam", "lr": 1e-3, "seed": 3}),
    ]
    _assert_matches_reference(configs)


def test_diverging_run_is_recorded_and_others_unaffected():
    linear = {"activation": "linear"}
    configs = [_config(model=linear, training={"seed": 0, "lr": 0.05}),
               _config(model={**linear, "weight_init": {"scheme": "normal", "std": 1.0}},
                       training={"seed": 1, "lr": 10.0}),
               _config(model=linear, training={"seed": 2, "lr": 0.05})]
    together = train_group([(str(i), c) for i, c in enumerate(configs)])
    assert [r.status for r in together] == ["done", "diverged", "done"]
    assert together[1].summary["diverged_at"] is not None
    assert together[1].summary["steps_done"] < 30
    alone = train_group([("2", configs[2])])[0]
    assert together[2].history["train_loss"] == pytest.approx(alone.history["train_loss"], rel=1e-5)


def test_runs_of_different_shapes_cannot_share_a_group():
    with pytest.raises(InitlabError, match=r"train_group: run 'b' has model.width=16 .* run 'a'"):
        train_group([("a", _config()), ("b", _config(model={"width": 16}))])


def test_symmetry_metrics_and_saturation():
    configs = [_config(model={"weight_init": init}, training={"steps": 20})
               for init in ("zeros", {"scheme": "constant", "value": 0.5}, "glorot_normal")]
    zero, constant, xavier = train_group([(str(i), c) for i, c in enumerate(configs)])
    assert zero.summary["distinct_units"] == [1, 1]
    assert constant.summary["distinct_units"] == [1, 1]
    assert xavier.summary["distinct_units"] == [32, 32]
    # constant 0.5 weights saturate tanh at init; Xavier does not
    assert constant.history["saturated_fraction"][0][1] > 0.5 > xavier.history["saturated_fraction"][0][1]
    assert len(xavier.summary["grad_norm"]) == 3 and len(xavier.summary["act_std"]) == 2


def test_relu_reports_no_saturation_and_float64_depth_signal():
    config = _config(model={"activation": "relu", "depth": 30, "width": 64,
                            "weight_init": {"scheme": "normal", "std": 0.05}},
                     training={"steps": 0, "dtype": "float64"})
    (result,) = train_group([("deep", config)])
    act_std = result.summary["act_std"]
    assert result.summary["saturated_fraction"] == [None] * 30
    # small weights: each ReLU layer scales the std by about 0.05 * sqrt(64 / 2) = 0.28;
    # float64 keeps 30 layers of it (about 3e-17) representable
    per_layer = (act_std[-1] / act_std[0]) ** (1 / 29)
    assert 0.2 < per_layer < 0.4 and act_std[-1] > 0
    assert len(result.summary["backprop_norm"]) == 30


def test_l2_penalty_shrinks_weights_and_targets_are_reported():
    configs = [_config(training={"seed": 0, "l2": l2, "steps": 60, "lr": 0.2, "target_accuracy": 0.2,
                                 "target_loss": 100.0})
               for l2 in (0.0, 0.1)]
    plain, penalised = train_group([(str(i), c) for i, c in enumerate(configs)])
    assert penalised.summary["weight_norm"] < 0.9 * plain.summary["weight_norm"]
    assert plain.summary["steps_to_target_loss"] == 0
    reached = plain.summary["steps_to_target_accuracy"]
    first = next(step for step, acc in zip(plain.history["step"], plain.history["test_accuracy"]) if acc >= 0.2)
    assert reached == first


def test_regression_on_teacher_reports_mse():
    config = RunConfig.model_validate({
        "dataset": {"name": "teacher", "n_train": 256, "n_test": 128},
        "model": {"depth": 1, "width": 16, "activation": "tanh", "weight_init": "glorot_normal"},
        "training": {"steps": 40, "log_every": 20, "batch_size": 32, "lr": 0.05}})
    (result,) = train_group([("teacher", config)])
    assert "test_accuracy" not in result.summary
    assert result.history["train_mse"][-1] < result.history["train_mse"][0]


def test_loss_per_run_matches_torch():
    logits = torch.randn(3, 7, 5)
    labels = torch.randint(0, 5, (3, 7))
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[r], labels[r]) for r in range(3)])
    torch.testing.assert_close(loss_per_run(logits, labels, "classification"), expected)


def test_eight_plain_sgd_runs_batched_equal_eight_runs_alone_fused_step():
    # one learning rate for the group: the update is fused into the backward pass
    schemes = ["glorot_normal", {"scheme": "he_normal"}, {"scheme": "normal", "std": 0.05},
               {"scheme": "orthogonal"}]
    configs = [
        _config(model={"weight_init": schemes[index % 4], "bias_init": {"scheme": "normal", "std": 0.1}},
                training={"optimizer": "sgd", "seed": index, "lr": 0.05, "l2": 1e-3 * (index % 3)})
        for index in range(8)
    ]
    _assert_matches_reference(configs)
