"""PyTorch models: apply schemes to modules, init records, LSUV; the torch.nn.init drop-in.

``initlab.nn.init`` is a drop-in replacement for ``torch.nn.init`` (same functions and
semantics, values from initlab's parallel reproducible streams); ``use_initlab_init()``
makes PyTorch's own layer constructors draw through it.
"""

from initlab.nn import init, presets
from initlab.nn.apply import init_, preview
from initlab.nn.discover import DiscoveryWarning
from initlab.nn.layers import register_layer
from initlab.nn.lsuv import LSUVRecord, lsuv_
from initlab.nn.partial import PartialLoad, load_matching
from initlab.nn.plan import Plan, Rule
from initlab.nn.record import InitRecord, Verification, verify
from initlab.nn.residual import Residual
from initlab.nn.switch import use_initlab_init

__all__ = [
    "init_",
    "preview",
    "lsuv_",
    "LSUVRecord",
    "Plan",
    "Rule",
    "InitRecord",
    "Verification",
    "verify",
    "Residual",
    "init",
    "use_initlab_init",
    "register_layer",
    "DiscoveryWarning",
    "load_matching",
    "PartialLoad",
    "presets",
]
