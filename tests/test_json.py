"""initlab's JSON outputs are valid JSON: no bare NaN or Infinity."""

import json
import math

from initlab._json import dumps, plain


def test_non_finite_numbers_become_null_at_any_depth():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": (2.5, "x"), "e": None, "f": 3}
    assert plain(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": [2.5, "x"], "e": None, "f": 3}
    text = dumps(value, sort_keys=True)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == plain(value)


def test_json_loads_rejects_what_python_json_would_write():
    # the standard module writes NaN, which strict parsers (and RFC 8259) reject
    assert json.dumps(math.nan) == "NaN"
    assert dumps(math.nan) == "null"
