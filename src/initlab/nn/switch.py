"""``use_initlab_init()``: make PyTorch's own layer constructors draw through initlab.

PyTorch layers initialise themselves in ``reset_parameters`` with
``torch.nn.init`` functions, reached in two ways in torch 2.13:

* through the module object: ``nn.Linear``, ``nn.Bilinear``, ``nn.Conv*``
  (also transposed, lazy and quantization-aware variants), ``nn.Embedding``,
  ``nn.EmbeddingBag``, ``nn.RNN``/``LSTM``/``GRU`` and their cells,
  ``nn.LayerNorm``/``GroupNorm``/``RMSNorm``, the batch/instance norms and
  ``nn.PReLU`` call ``init.kaiming_uniform_(...)``, ``init.uniform_(...)``,
  ``init.normal_(...)``, ``init.ones_(...)`` ... — attributes of
  ``torch.nn.init`` looked up at call time;
* through names imported into another module: ``torch.nn.modules.activation``
  (``nn.MultiheadAttention``, hence ``nn.TransformerEncoderLayer`` /
  ``DecoderLayer``) did ``from torch.nn.init import constant_, xavier_normal_,
  xavier_uniform_``, and ``torch.nn.modules.transformer`` (``nn.Transformer``)
  ``from torch.nn.init import xavier_uniform_``.

So the switch replaces, for its duration, every public function of
``torch.nn.init`` (``torch.nn.init.__all__``, deprecated aliases included)
by the :mod:`initlab.nn.init` function of the same name, and every other
binding of those function objects in an imported ``torch.*`` module (found
by identity, so names imported by other torch modules are covered too).
torch's private helpers (``_calculate_fan_in_and_fan_out``, ...) are left
alone. On exit each replaced attribute gets back the very object it had.

Inside the switch a layer gets the distribution it gets from plain PyTorch
(same bounds and std), with values from initlab's parallel streams seeded by
torch's default generator (``torch.manual_seed`` still makes model
construction reproducible; see :mod:`initlab.nn.init`).

Usage::

    with initlab.nn.use_initlab_init():
        model = build_model()

    switch = initlab.nn.use_initlab_init()   # plain call: active until restored
    model = build_model()
    switch.restore()

Nesting and exceptions. Every handle holds one reference on a process-wide
count: torch's functions are replaced when the count goes from 0 to 1 and
restored when it returns to 0, so nested blocks, and handles restored in any
order, are safe; ``restore()`` is idempotent and ``__exit__`` restores also
when the block raises. A handle left without ``restore()`` keeps the switch
on: use the ``with`` form where you can.

Thread safety. The switch changes module attributes, which are shared by the
whole process: while any handle is active, *every* thread's calls to
``torch.nn.init`` (and layer constructions) go through initlab, and there is
no per-thread switch. Activation and restoration themselves are serialised by
a lock, so handles may be opened and closed from several threads. Calls that
a thread is executing while another thread flips the switch finish with the
function they started with.

If some other code replaces one of the patched attributes while the switch is
on, restoring leaves that attribute as the other code set it (and warns),
rather than overwriting it.
"""

from __future__ import annotations

import sys
import threading
import types
import warnings
from typing import Any

import torch.nn.init as _torch_init

from initlab.nn import init as _initlab_init

__all__ = ["use_initlab_init", "InitlabInitSwitch", "is_active", "patched_attributes"]

_lock = threading.RLock()
_holders = 0
_patches: list[tuple[types.ModuleType, str, Any, Any]] = []  # (module, attribute, original, replacement)


def _replacements() -> dict[int, tuple[Any, Any]]:
    """id(torch original) -> (torch original, initlab replacement)."""
    table = {}
    for name, original in _initlab_init.TORCH_FUNCTIONS.items():
        table[id(original)] = (original, getattr(_initlab_init, name))
    return table


def _torch_modules() -> list[types.ModuleType]:
    return [
        module
        for name, module in list(sys.modules.items())
        if (name == "torch" or name.startswith("torch.")) and isinstance(module, types.ModuleType)
    ]


def _activate() -> None:
    table = _replacements()
    missing = [name for name, f in _initlab_init.TORCH_FUNCTIONS.items() if getattr(_torch_init, name) is not f]
    if missing:
        warnings.warn(
            f"use_initlab_init: torch.nn.init.{', '.join(missing)} had already been replaced by other code; "
            f"those attributes are left as they are.",
            RuntimeWarning,
            stacklevel=3,
        )
    for module in _torch_modules():
        namespace = getattr(module, "__dict__", None)
        if not namespace:
            continue
        for attribute, value in list(namespace.items()):
            entry = table.get(id(value))
            if entry is not None and entry[0] is value:
                _patches.append((module, attribute, value, entry[1]))
    for module, attribute, _original, replacement in _patches:
        setattr(module, attribute, replacement)


def _deactivate() -> None:
    changed = []
    while _patches:
        module, attribute, original, replacement = _patches.pop()
        if getattr(module, attribute, None) is replacement:
            setattr(module, attribute, original)
        else:
            changed.append(f"{module.__name__}.{attribute}")
    if changed:
        warnings.warn(
            f"use_initlab_init: {', '.join(changed)} was replaced by other code while the switch was on; "
            f"left as that code set it.",
            RuntimeWarning,
            stacklevel=3,
        )


def is_active() -> bool:
    """Whether torch's init functions are currently replaced by initlab's."""
    with _lock:
        return _holders > 0


def patched_attributes() -> list[str]:
    """``module.attribute`` names currently replaced (empty when the switch is off)."""
    with _lock:
        return [f"{module.__name__}.{attribute}" for module, attribute, _, _ in _patches]


class InitlabInitSwitch:
    """Handle of :func:`use_initlab_init`: a context manager with an idempotent ``restore()``."""

    def __init__(self) -> None:
        self._held = False
        self._acquire()

    def _acquire(self) -> None:
        global _holders
        with _lock:
            if self._held:
                return
            if _holders == 0:
                try:
                    _activate()
                except BaseException:
                    _deactivate()
                    raise
            _holders += 1
            self._held = True

    @property
    def active(self) -> bool:
        """Whether this handle still holds the switch on."""
        return self._held

    def restore(self) -> None:
        """Release this handle; torch's functions come back when no handle is left."""
        global _holders
        with _lock:
            if not self._held:
                return
            self._held = False
            _holders -= 1
            if _holders == 0:
                _deactivate()

    def __enter__(self) -> InitlabInitSwitch:
        self._acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.restore()

    def __repr__(self) -> str:
        return f"<InitlabInitSwitch {'active' if self._held else 'restored'}>"


def use_initlab_init() -> InitlabInitSwitch:
    """Make ``torch.nn.init`` (and so every PyTorch layer's ``reset_parameters``) use initlab.

    Returns a handle that is already active: use it as a context manager
    (``with use_initlab_init(): ...``) or call ``.restore()`` when done. See
    the module note for what is replaced, nesting and thread safety.
    """
    return InitlabInitSwitch()
