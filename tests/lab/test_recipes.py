"""The seed-level claims measured side by side: numpy recipe, initlab's numpy sample, torch, Keras."""

from __future__ import annotations

import math
import os

import pytest

from initlab.lab.recipes import SHAPE, keras_available, seed_level_rows, target_std


@pytest.fixture(scope="module")
def rows():
    if keras_available() and "KERAS_BACKEND" not in os.environ:
        os.environ["KERAS_BACKEND"] = "torch"  # this test process's own choice, before keras is imported
    return {(row.scheme, row.form): row for row in seed_level_rows(seed=0)}


def test_target_std_is_the_papers_formula():
    assert target_std("glorot_normal", 512, 256) == pytest.approx(math.sqrt(2 / 768))
    assert target_std("he_normal", 512, 256) == pytest.approx(math.sqrt(2 / 512))


@pytest.mark.parametrize("scheme", ["glorot_normal", "he_normal"])
@pytest.mark.parametrize("form", ["numpy recipe", "initlab (numpy)", "torch"])
def test_normal_forms_follow_the_formula_within_sampling_error(rows, scheme, form):
    row = rows[(scheme, form)]
    n = SHAPE[0] * SHAPE[1]
    # the sample std of n normal draws has std target / sqrt(2n); 5 of those
    assert abs(row.std - row.target_std) < 5 * row.target_std / math.sqrt(2 * n)
    assert row.ks < row.ks_bound
    assert row.expected.startswith("normal, std")
    assert 3.5 < row.max_over_sigma < 6.0  # the largest of 131072 normal draws lies near 4.4 sigma


@pytest.mark.skipif(not keras_available(), reason="Keras 3 is not installed (pip install 'initlab[keras]')")
@pytest.mark.parametrize("scheme", ["glorot_normal", "he_normal"])
def test_keras_normal_is_a_truncated_normal_with_the_same_std(rows, scheme):
    row = rows[(scheme, "keras")]
    n = SHAPE[0] * SHAPE[1]
    assert row.expected.startswith("truncated normal") and "cut at +-2 sigma" in row.expected
    # the truncated normal's std is corrected to the target (Keras's 0.8796 factor)
    assert abs(row.std - row.target_std) < 5 * row.target_std / math.sqrt(2 * n)
    # but its shape is not the formula's normal: the KS distance between N(0, 1) and a normal of std
    # s = 1 / 0.87962566 cut at +-2 s, computed here on a fine grid, is what the sample shows
    from scipy import stats

    s = 1 / 0.87962566
    grid = [i / 1000 for i in range(-4000, 4001)]
    mass = stats.norm.cdf(2) - stats.norm.cdf(-2)
    truncated = [min(1.0, max(0.0, (stats.norm.cdf(x / s) - stats.norm.cdf(-2)) / mass)) for x in grid]
    distance = max(abs(t - stats.norm.cdf(x)) for t, x in zip(truncated, grid))
    assert distance > 3 * row.ks_bound
    assert abs(row.ks - distance) < row.ks_bound
