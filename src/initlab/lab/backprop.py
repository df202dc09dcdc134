"""The trainer's fast path: hand-written forward and backward passes for stacked plain MLPs.

For a plain MLP (``kind = "mlp"``, no normalisation) whose activation's
derivative can be read off its output, a training step needs nothing from
autograd but three batched matrix products per layer (Rumelhart, Hinton &
Williams 1986)::

    forward   z_l = h_{l-1} W_l^T + b_l,   h_l = phi(z_l)      (in place; h_l kept)
    backward  delta_l  = dL/dz_l = dL/dh_l * phi'(z_l)        (phi' from h_l)
              dL/dW_l  = delta_l^T h_{l-1},   dL/db_l = 1^T delta_l
              dL/dh_{l-1} = delta_l W_l

``phi'`` from the output: tanh ``1 - h^2``, sigmoid ``h (1 - h)``, softsign
``(1 - |h|)^2``, relu and leaky_relu with a positive slope ``1`` or the slope
by the sign of ``h``, linear ``1`` (tanh, sigmoid, relu and leaky_relu by the
ATen backward operators autograd itself runs, ``torch.ops.aten.*_backward``).
L is the sum over runs of each run's mean loss, so every run gets exactly the
gradient of its own loss; runs never mix (each product is one matrix per
run, ``torch.bmm``). Parameters keep their dtype (float32 or float64).

With plain SGD and one learning rate for all runs of the group, the update
is folded into the gradient product: ``W_l <- W_l - lr delta_l^T h_{l-1}``
is one ``baddbmm_`` into ``W_l`` (taken after ``delta_l W_l`` has used the
old ``W_l``), and the bias update one ``1^T delta_l`` product into ``b_l``,
so no gradient tensor is ever written and read back. The L2 penalty and
decoupled weight decay become one shrink of the parameter before it,
``W <- W (1 - lr (l2 + weight_decay))``, which equals the optimiser's
``W - lr (dW + l2 W)`` after the decay (see :mod:`initlab.lab.trainer`) up to
rounding. Every other case (momentum, Adam, per-run learning rates, stopped
runs) takes the explicit gradients from :meth:`MlpBackprop.gradients`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from initlab.lab.models import StackedModel

_aten = torch.ops.aten

Activation = Callable[[torch.Tensor], torch.Tensor]
"""Applies phi in place and returns its argument."""
Derivative = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(dL/dh, h) -> dL/dz`` written into the first argument."""


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _pass_through(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    return grad


def _softsign_(z: torch.Tensor) -> torch.Tensor:
    """``z / (1 + |z|)`` in place."""
    return z.div_(z.abs().add_(1.0))


def _softsign_backward_(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``dL/dz = dL/dh (1 - |h|)^2`` written into ``grad`` (``1 / (1 + |z|) = 1 - |h|``)."""
    rest = out.abs().neg_().add_(1.0)
    return grad.mul_(rest).mul_(rest)


def _output_rules(name: str, params: dict) -> tuple[Activation, Derivative] | None:
    """phi in place and phi' from phi's output, for activations where the output determines phi'."""
    if name == "tanh":
        return torch.tanh_, lambda grad, out: _aten.tanh_backward.grad_input(grad, out, grad_input=grad)
    if name == "sigmoid":
        return torch.sigmoid_, lambda grad, out: _aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)
    if name == "softsign":
        return _softsign_, _softsign_backward_
    if name == "relu":
        return torch.relu_, lambda grad, out: _aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)
    if name == "leaky_relu" and float(params.get("negative_slope", 0.01)) > 0:
        slope = float(params.get("negative_slope", 0.01))
        return (
            lambda z: F.leaky_relu_(z, slope),
            lambda grad, out: _aten.leaky_relu_backward.grad_input(grad, out, slope, True, grad_input=grad),
        )
    if name == "linear":
        return _identity, _pass_through
    return None


class MlpBackprop:
    """Forward, loss and backward of a stacked plain MLP by hand, with reused buffers.

    Use :meth:`for_model` (None when the model needs autograd), then per
    step :meth:`loss` followed by either :meth:`sgd_step_` or
    :meth:`gradients`. Buffers are kept per shape and reused by later calls;
    the model's parameters are read and updated in place.
    """

    def __init__(self, model: StackedModel, rules: tuple[Activation, Derivative]) -> None:
        spec = model.spec
        self.model, (self.activation, self.derivative) = model, rules
        self.names = [f"layers.{layer}" for layer in range(spec.num_layers)]
        self.weights = [model.params[f"{name}.weight"] for name in self.names]
        self.biases = [model.params.get(f"{name}.bias") for name in self.names]
        # views made once (the parameters are updated in place, so they stay valid)
        self._transposed = [weight.transpose(1, 2) for weight in self.weights]
        self._bias_rows = [None if bias is None else bias.unsqueeze(1) for bias in self.biases]
        self.inputs: list[torch.Tensor] = []
        self.delta = torch.empty(0)  # dL/d(output), set by loss()
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._grads: dict[str, torch.Tensor] = {}

    @classmethod
    def for_model(cls, model: StackedModel) -> MlpBackprop | None:
        """The fast path for ``model``, or None when its architecture needs autograd."""
        spec = model.spec
        if spec.kind != "mlp" or spec.norm != "none":
            return None
        rules = _output_rules(spec.activation, dict(spec.activation_params))
        return None if rules is None else cls(model, rules)

    def _buffer(self, role: str, index: int, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        key = (role, index, shape)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = (torch.ones if role == "ones" else torch.empty)(shape, dtype=like.dtype)
        return buffer

    @torch.no_grad()
    def loss(self, x: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
        """Each run's mean loss on its batch ``x`` (R, B, ...); keeps what backward needs.

        Classification: cross-entropy, ``dL/dlogits = (softmax - onehot) / B``.
        Regression: mean squared error over the batch and outputs,
        ``dL/dout = 2 (out - y) / (B * outputs)``.
        """
        runs, batch = x.shape[:2]
        h = x.reshape(runs, batch, -1)
        self.inputs = [h]
        last = len(self.weights) - 1
        for layer in range(last + 1):
            h = self._layer(layer, h, self._buffer("z", layer, (runs, batch, self.weights[layer].shape[1]), h))
            if layer != last:
                self.inputs.append(h)
        if task == "classification":
            # log-softmax by hand, keeping exp(shifted) for the gradient
            shifted = h - h.amax(dim=2, keepdim=True)
            exps = shifted.exp()
            totals = exps.sum(dim=2, keepdim=True)
            picked = shifted.gather(2, targets.unsqueeze(2)).squeeze(2) - totals.log().squeeze(2)
            losses = -picked.mean(dim=1)
            delta = exps.div_(totals.mul_(batch))
            self.delta = delta.scatter_add_(2, targets.unsqueeze(2), torch.full_like(picked, -1.0 / batch).unsqueeze(2))
        else:
            difference = h - targets
            losses = difference.pow(2).reshape(runs, -1).mean(dim=1)
            self.delta = difference.mul_(2.0 / difference[0].numel())
        return losses

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs for inputs ``x`` (R, N, ...), as the model's forward, in reused buffers.

        For evaluation: two buffers per shape hold the layers' outputs in
        turn, so the result is overwritten by the next call.
        """
        runs, count = x.shape[:2]
        h = x.reshape(runs, count, -1)
        for layer, weight in enumerate(self.weights):
            h = self._layer(layer, h, self._buffer("eval", layer % 2, (runs, count, weight.shape[1]), h))
        return h

    def _layer(self, layer: int, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s output for input ``h``, written into ``out`` (phi applied except at the top)."""
        transposed, bias_row = self._transposed[layer], self._bias_rows[layer]
        if bias_row is None:
            torch.bmm(h, transposed, out=out)
        else:
            torch.baddbmm(bias_row, h, transposed, out=out)
        return out if layer == len(self.weights) - 1 else self.activation(out)

    @torch.no_grad()
    def gradients(self, finite: torch.Tensor) -> dict[str, torch.Tensor]:
        """``name -> dL/dparam`` (stacked) for the batch of the last :meth:`loss`.

        Runs whose loss is not ``finite`` contribute no gradient at the output
        (their other gradients may be NaN; the trainer zeroes stopped runs).
        The returned tensors are reused by the next call.
        """
        if not bool(finite.all()):
            self.delta[~finite] = 0.0
        if not self._grads:
            self._grads = {name: torch.empty_like(param) for name, param in self.model.params.items()}
        grads = self._grads

        def record(layer: int, delta: torch.Tensor, inputs: torch.Tensor) -> None:
            name = self.names[layer]
            torch.bmm(delta.transpose(1, 2), inputs, out=grads[f"{name}.weight"])
            if self.biases[layer] is not None:
                torch.sum(delta, dim=1, out=grads[f"{name}.bias"])

        self._backward(record)
        return grads

    @torch.no_grad()
    def sgd_step_(self, lr: float, shrink: Callable[[str, torch.Tensor], None]) -> None:
        """Plain SGD with one learning rate, fused into the backward pass.

        ``shrink(name, param)`` applies the L2 / weight-decay factor to a
        parameter in place before its gradient step.
        """

        def update(layer: int, delta: torch.Tensor, inputs: torch.Tensor) -> None:
            name = self.names[layer]
            weight, bias = self.weights[layer], self.biases[layer]
            shrink(f"{name}.weight", weight)
            weight.baddbmm_(delta.transpose(1, 2), inputs, alpha=-lr)
            bias_row = self._bias_rows[layer]
            if bias is not None and bias_row is not None:
                shrink(f"{name}.bias", bias)
                ones = self._buffer("ones", 0, (delta.shape[0], 1, delta.shape[1]), delta)
                bias_row.baddbmm_(ones, delta, alpha=-lr)

        self._backward(update)

    def _backward(self, visit: Callable[[int, torch.Tensor, torch.Tensor], None]) -> None:
        """From the output layer down: ``visit(layer, dL/dz_layer, layer input)``.

        ``dL/dh`` of the layer below is taken before ``visit`` (which may
        update the layer's weights in place).
        """
        delta = self.delta
        for layer in range(len(self.weights) - 1, -1, -1):
            inputs = self.inputs[layer]
            below = None
            if layer > 0:
                below = self._buffer("dh", layer % 2, tuple(inputs.shape), inputs)
                torch.bmm(delta, self.weights[layer], out=below)
            visit(layer, delta, inputs)
            if below is not None:
                delta = self.derivative(below, inputs)
