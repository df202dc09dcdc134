"""The trainer's fast path: hand-written forward and backward passes for stacked plain MLPs.

For a plain MLP (``kind = "mlp"``, no normalisation) whose activation's
derivative can be read off its output, a training step needs nothing from
autograd but three batched matrix products per layer (Rumelhart, Hinton &
Williams 1986)::

    forward   z_l = h_{l-1} W_l^T + b_l,   h_l = phi(z_l)      (in place; h_l kept)
    backward  delta_l  = dL/dz_l = dL/dh_l * phi'(z_l)        (phi' from h_l)
              dL/dW_l  = delta_l^T h_{l-1},   dL/db_l = 1^T delta_l
              dL/dh_{l-1} = delta_l W_l

``phi'`` from the output: tanh ``1 - h^2``, sigmoid ``h (1 - h)``, relu and
leaky_relu with a positive slope ``1`` or the slope by the sign of ``h``,
linear ``1``. L is the sum over runs of each run's mean loss, so every run
gets exactly the gradient of its own loss; runs never mix (each product is
one matrix per run, ``torch.bmm``).

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

Measured (2 cores, 32 runs of 10x128 tanh, batch 128): a step costs three
``bmm`` per layer plus one activation and one derivative pass, about twice
as fast as autograd over the same stacked model, whose backward writes
gradient tensors, sums bias gradients over the batch and copies transposes.

In float32 a step runs in :mod:`initlab._trainer` when torch ships MKL
(:data:`COMPILED_STEP`), for plain SGD, momentum and Adam alike (per-run
hyper-parameters, stopped runs included): the same formulas, but each core
takes one run at a time through all the steps up to the next log (forward
pass, loss, backward pass, update, again), so that run's weights and
activations stay in that core's L2 cache (about 1.4 MB for 10x128 at batch
128), while the batched products above stream all runs' (~40 MB) three
times per step. Its products are
torch's own sgemm, single-threaded per core; tanh and sigmoid are its own
vectorised polynomials (within a few float32 ulp). About 1.4x faster than
the batched products here; evaluation (:meth:`MlpBackprop.outputs`) runs
there too. The torch path above remains for float64 and where no MKL can be
bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from initlab import _trainer
from initlab.lab.models import StackedModel

if TYPE_CHECKING:
    from initlab.lab.trainer import StackedOptimizer

_aten = torch.ops.aten

Activation = Callable[[torch.Tensor], torch.Tensor]
"""Applies phi in place and returns its argument."""
Derivative = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(dL/dh, h) -> dL/dz`` written into the first argument."""


def _bind_torch_blas() -> bool:
    """Bind :mod:`initlab._trainer` to torch's own BLAS (MKL's sgemm in libtorch_cpu on Linux x86-64)."""
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    return library.is_file() and _trainer.bind_blas(str(library))


COMPILED_STEP = _bind_torch_blas()
"""Whether float32 training steps (SGD, momentum, Adam) and evaluations can run in :mod:`initlab._trainer`."""


def _kernel_threads(runs: int) -> int:
    """Threads for a compiled call over ``runs`` runs: torch's thread count, at most one per
    run and at most what :mod:`initlab._trainer` takes."""
    return max(1, min(torch.get_num_threads(), runs, _trainer.max_threads))


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _pass_through(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    return grad


def _output_rules(name: str, params: dict) -> tuple[Activation, Derivative] | None:
    """phi in place and phi' from phi's output, for activations where the output determines phi'."""
    if name == "tanh":
        return torch.tanh_, lambda grad, out: _aten.tanh_backward.grad_input(grad, out, grad_input=grad)
    if name == "sigmoid":
        return torch.sigmoid_, lambda grad, out: _aten.sigmoid_backward.grad_input(grad, out, grad_input=grad)
    if name == "relu":
        return torch.relu_, lambda grad, out: _aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)
    if name == "leaky_relu" and float(params.get("negative_slope", 0.01)) > 0:
        slope = float(params.get("negative_slope", 0.01))
        return (lambda z: F.leaky_relu_(z, slope),
                lambda grad, out: _aten.leaky_relu_backward.grad_input(grad, out, slope, True, grad_input=grad))
    if name == "linear":
        return _identity, _pass_through
    return None


class MlpBackprop:
    """Forward, loss and backward of a stacked plain MLP by hand, with reused buffers.

    Use :meth:`for_model` (None when the model needs autograd), then per
    step :meth:`loss` followed by either :meth:`sgd_step_` or
    :meth:`gradients`. Kernels run on torch's intra-op threads. (Splitting
    the runs over Python threads with one torch thread each was measured
    too: about 8 % slower on an idle 2-core machine, though far less hurt
    when the other core is busy.)
    """

    def __init__(self, model: StackedModel, rules: tuple[Activation, Derivative]) -> None:
        spec = model.spec
        self.model, (self.activation, self.derivative) = model, rules
        self.activation_name = spec.activation
        self.slope = float(dict(spec.activation_params).get("negative_slope", 0.01)) \
            if spec.activation == "leaky_relu" else 0.0
        self.names = [f"layers.{layer}" for layer in range(spec.num_layers)]
        self.weights = [model.params[f"{name}.weight"] for name in self.names]
        self.biases = [model.params.get(f"{name}.bias") for name in self.names]
        # views made once (the parameters are updated in place, so they stay valid)
        self._transposed = [weight.transpose(1, 2) for weight in self.weights]
        self._bias_rows = [None if bias is None else bias.unsqueeze(1) for bias in self.biases]
        self.inputs: list[torch.Tensor] = []
        self.delta: torch.Tensor | None = None
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._grads: dict[str, torch.Tensor] = {}
        dtype = self.weights[0].dtype
        with_biases = [bias is not None for bias in self.biases]
        self.compiled = (COMPILED_STEP and dtype == torch.float32 and len(self.weights) <= _trainer.max_layers
                         and (all(with_biases) or not any(with_biases)))
        """Whether :meth:`compiled_steps` and a compiled :meth:`outputs` are available."""
        if self.compiled:
            # numpy views of the parameters' memory (updated in place, so the views stay valid)
            self._weight_arrays = [weight.detach().numpy() for weight in self.weights]
            self._bias_arrays = [bias.detach().numpy() for bias in self.biases] if all(with_biases) else None
            self.widths = [self.weights[0].shape[2]] + [weight.shape[1] for weight in self.weights]

    @classmethod
    def for_model(cls, model: StackedModel) -> "MlpBackprop | None":
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
            # log-softmax by hand: torch's kernel is slow over a last dimension of ~10 classes
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
    def compiled_steps(self, x: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, task: str,
                       optimizer: "StackedOptimizer") -> torch.Tensor:
        """``K`` optimiser steps of every run in :mod:`initlab._trainer`; each run's loss before each, (R, K).

        Run ``r``'s ``k``-th step trains on the examples ``x[rows[r, k]]``
        with ``targets[rows[r, k]]``, ``rows`` (R, K, B): the kernel gathers
        them (a gather by torch between steps would leave torch's worker
        threads spinning on the cores the steps need), and a thread does all
        of a run's steps before taking another run, its weights staying in
        that core's cache. The update is ``optimizer``'s (plain SGD, momentum
        or Adam, with its per-run hyper-parameters, L2 and weight decay); its
        step count advances by ``K``. A stopped run (lr 0) is skipped (losses
        0); a run stops at its first non-finite loss, whose step it does not
        make (NaN after it). The returned tensor is reused by the next call
        with the same shape.
        """
        runs, count, batch = rows.shape
        examples = x.reshape(len(x), -1).contiguous()
        labels = targets.contiguous() if task == "classification" else targets.reshape(len(targets), -1).contiguous()
        losses = self._buffer("losses", 0, (runs, count), examples)
        threads = _kernel_threads(runs)
        scratch = self._scratch(threads, batch, training=True)
        names = [f"{name}.weight" for name in self.names]
        if self._bias_arrays is not None:
            names += [f"{name}.bias" for name in self.names]
        states = [[tensor.numpy() for tensor in state] for state in optimizer.states_for(names)]
        _trainer.train_step(examples.numpy(), labels.numpy(), rows.contiguous().numpy(), self._weight_arrays,
                            self._bias_arrays, optimizer.kind, optimizer.compiled_hyper().numpy(), optimizer.steps,
                            states, losses.numpy(), scratch.numpy(), self.activation_name, self.slope, task, threads)
        optimizer.steps += count
        return losses

    def _scratch(self, threads: int, batch: int, training: bool) -> torch.Tensor:
        """The compiled step's per-thread working memory (reused)."""
        floats = _trainer.scratch_floats(batch, self.widths, training)
        return self._buffer("scratch", int(training), (threads, floats), self.weights[0])

    @torch.no_grad()
    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs for inputs ``x`` (R, N, ...), as the model's forward, in reused buffers.

        For evaluation (about 2.5x faster than allocating every layer's
        output); the result is overwritten by the next call. Inputs shared
        by every run (``x`` expanded from one tensor) are read once.
        """
        runs, count = x.shape[:2]
        if self.compiled:
            shared = x.stride(0) == 0
            inputs = (x[:1] if shared else x).reshape(1 if shared else runs, count, -1).contiguous()
            out = self._buffer("outputs", 0, (runs, count, self.widths[-1]), inputs)
            threads = _kernel_threads(runs)
            _trainer.forward(inputs.numpy(), self._weight_arrays, self._bias_arrays, out.numpy(),
                             self._scratch(threads, count, training=False).numpy(),
                             self.activation_name, self.slope, threads)
            return out
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
            if bias is not None:
                shrink(f"{name}.bias", bias)
                ones = self._buffer("ones", 0, (delta.shape[0], 1, delta.shape[1]), delta)
                self._bias_rows[layer].baddbmm_(ones, delta, alpha=-lr)

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
