"""initlab: neural-network weight and bias initialization, done right and shown why."""

from initlab._version import __version__
from initlab.activations import get_activation
from initlab.auditing import AuditReport, audit
from initlab.conventions import compare_conventions
from initlab.errors import InitlabError
from initlab.fans import Fans, Layout, fans
from initlab.gains import gain
from initlab.nn import InitRecord, LSUVRecord, Plan, Residual, Rule, init_, lsuv_, preview, verify
from initlab.random import Stream
from initlab.schemes import (
    Scheme,
    constant,
    delta_orthogonal,
    from_dict,
    get,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    identity,
    known_schemes,
    large_random,
    lecun_normal,
    lecun_uniform,
    normal,
    ones,
    orthogonal,
    small_random,
    sparse,
    truncated_normal,
    uniform,
    variance_scaling,
    zeros,
)
from initlab.theory import MeanField, critical_sigma_w2

xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform

__all__ = [
    "InitlabError",
    "Fans",
    "Layout",
    "fans",
    "Stream",
    "Scheme",
    "get",
    "from_dict",
    "known_schemes",
    "zeros",
    "ones",
    "constant",
    "small_random",
    "large_random",
    "normal",
    "uniform",
    "truncated_normal",
    "variance_scaling",
    "glorot_normal",
    "glorot_uniform",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "identity",
    "delta_orthogonal",
    "sparse",
    "gain",
    "get_activation",
    "MeanField",
    "critical_sigma_w2",
    "init_",
    "lsuv_",
    "verify",
    "preview",
    "Plan",
    "Rule",
    "Residual",
    "InitRecord",
    "LSUVRecord",
    "audit",
    "AuditReport",
    "compare_conventions",
    "__version__",
]
