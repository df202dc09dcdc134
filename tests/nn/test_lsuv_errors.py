"""lsuv_'s own failures are named for what is wrong, never blamed on the model."""

import pytest
import torch
from torch import nn

import initlab
from initlab.errors import InitlabError


def test_an_empty_batch_is_named_not_blamed_on_the_model():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(InitlabError, match=r"^lsuv_: batch of shape \(0, 5\) is empty; expected at least one example"):
        initlab.lsuv_(model, torch.zeros(0, 5))


@pytest.mark.parametrize("center", [False, True])
def test_a_dead_layer_is_named_not_blamed_on_the_model(center):
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # every ReLU unit is off: layer '2' sees a constant input
        model[2].bias.copy_(torch.tensor([0.0, 1.0, 2.0]))  # its output still varies, through the bias alone
    before = model[2].weight.clone()
    with pytest.raises(InitlabError) as caught:
        initlab.lsuv_(model, torch.randn(8, 5), pre_init=False, center=center)
    message = str(caught.value)
    assert message.startswith("lsuv_: layer '2' (Linear) is dead on this batch: its output without the bias has variance 0")
    assert "rejected by the model" not in message and "ZeroDivisionError" not in message
    assert torch.equal(model[2].weight, before)


def test_an_error_of_the_model_itself_is_still_blamed_on_the_model():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(5, 3)

        def forward(self, x):
            return self.layer(x) + torch.ones(7)

    with pytest.raises(InitlabError, match=r"was rejected by the model \(Broken\): RuntimeError"):
        initlab.lsuv_(Broken(), torch.randn(8, 5))
