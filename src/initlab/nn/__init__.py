"""PyTorch models: apply schemes to modules, init records, LSUV."""

from initlab.nn.apply import init_, preview
from initlab.nn.lsuv import LSUVRecord, lsuv_
from initlab.nn.plan import Plan, Rule
from initlab.nn.record import InitRecord, Verification, verify
from initlab.nn.residual import Residual
