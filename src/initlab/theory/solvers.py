"""Vectorised root finders for the fixed points of the q-map and the c-map.

Each solver works on many independent problems at once (one per
``(sigma_w2, sigma_b2)`` pair of a phase diagram, or just one for
:class:`~initlab.theory.MeanField`): a bracket is searched geometrically, then
closed by the Illinois variant of regula falsi, which converges superlinearly
and never leaves the bracket.  Functions are called as ``f(x, index)`` with
``index`` the problems still being solved.

Reference: Dowell & Jarratt (1971), "A modified regula falsi method for
computing the root of an equation" (the Illinois method).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray
IndexedFunction = Callable[[Array, Array], Array]

Q_ZERO = 1e-30
"""A fixed point of the q-map below this variance is reported as q* = 0."""

Q_GROWTH_LIMIT = 1e12
"""No sign change of q_map(q) - q up to this factor times max(1, q0, sigma_b2) means q* = inf."""


def illinois(
    f: IndexedFunction, lo: Array, hi: Array, f_lo: Array, f_hi: Array, rtol: float = 1e-15, max_iterations: int = 200
) -> Array:
    """Roots of ``f(., i)`` in the brackets ``[lo_i, hi_i]`` where ``f_lo_i`` and ``f_hi_i`` differ in sign.

    Regula falsi ``x = hi - f_hi (hi - lo) / (f_hi - f_lo)``; when the same end is kept
    twice in a row its function value is halved (Illinois), which restores
    superlinear convergence (order ~1.44).  Stops when the bracket is narrower than
    ``rtol * |x|`` (plus the smallest normal number) or ``f(x) = 0``.
    """
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    f_lo, f_hi = np.array(f_lo, dtype=float), np.array(f_hi, dtype=float)
    root = np.where(f_lo == 0, lo, np.where(f_hi == 0, hi, np.nan))
    kept = np.zeros(lo.size, dtype=int)  # +1: lo was replaced last time, -1: hi was
    active = np.flatnonzero(np.isnan(root))
    for _ in range(max_iterations):
        if active.size == 0:
            break
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        x = b - fb * (b - a) / (fb - fa)
        outside = ~((x > np.minimum(a, b)) & (x < np.maximum(a, b)))
        x = np.where(outside, (a + b) / 2, x)
        fx = f(x, active)
        replace_lo = np.sign(fx) == np.sign(fa)
        lo[active] = np.where(replace_lo, x, a)
        f_lo[active] = np.where(replace_lo, fx, fa)
        hi[active] = np.where(replace_lo, b, x)
        f_hi[active] = np.where(replace_lo, fb, fx)
        previous = kept[active]
        f_hi[active] = np.where(replace_lo & (previous == 1), f_hi[active] / 2, f_hi[active])
        f_lo[active] = np.where(~replace_lo & (previous == -1), f_lo[active] / 2, f_lo[active])
        kept[active] = np.where(replace_lo, 1, -1)
        width = np.abs(hi[active] - lo[active])
        done = (fx == 0) | (width <= rtol * np.abs(x) + np.finfo(float).tiny)
        root[active[done]] = x[done]
        active = active[~done]
    root[active] = (lo[active] + hi[active]) / 2
    return root


def solve_q_star(second_moment: Callable[[Array], Array], sigma_w2: Array, sigma_b2: Array, q0: float = 1.0) -> Array:
    """Stable fixed points ``q* = sigma_w2 E[phi(sqrt(q*) z)^2] + sigma_b2`` reached from ``q0``.

    With ``g(q) = q_map(q) - q``: if ``g(q0) > 0`` the iterates of the q-map grow, and
    the fixed point is the first sign change of ``g`` above ``q0`` (searched by factors
    of 4); if ``g(q0) < 0`` they shrink and it is the first sign change below ``q0``
    (factors of 1/16).  For a monotone q-map this is the fixed point the iteration
    ``q^{l+1} = q_map(q^l)`` converges to, and it is stable (``g`` falls through 0).

    Args:
        second_moment: ``q -> E[phi(sqrt(q) z)^2]``, vectorised.
        sigma_w2, sigma_b2: 1-D arrays of the same length, one problem each.
        q0: the starting variance.

    Returns:
        ``q*`` per problem; ``0.0`` when the iterates decay below :data:`Q_ZERO`,
        ``inf`` when they grow without bound (no sign change up to
        :data:`Q_GROWTH_LIMIT` ``* max(1, q0, sigma_b2)``).
    """
    sigma_w2, sigma_b2 = np.asarray(sigma_w2, dtype=float), np.asarray(sigma_b2, dtype=float)

    def gap(q: Array, index: Array) -> Array:
        return sigma_w2[index] * second_moment(q) + sigma_b2[index] - q

    size = sigma_w2.size
    start = np.full(size, float(q0))
    g_start = gap(start, np.arange(size))
    q_star = np.where(g_start == 0, float(q0), np.nan)
    end_a, g_a = start.copy(), g_start.copy()
    end_b, g_b = start.copy(), g_start.copy()
    q_max = Q_GROWTH_LIMIT * max(1.0, float(q0), float(np.max(sigma_b2, initial=0.0)))
    for direction, factor, limit, unbounded in ((1, 4.0, q_max, np.inf), (-1, 1 / 16, Q_ZERO, 0.0)):
        moving = np.flatnonzero(np.sign(g_start) == direction)
        q, g = start[moving], g_start[moving]
        while moving.size:
            q_next = q * factor
            g_next = gap(q_next, moving)
            crossed = np.sign(g_next) != direction
            where = moving[crossed]
            end_a[where], g_a[where] = q[crossed], g[crossed]
            end_b[where], g_b[where] = q_next[crossed], g_next[crossed]
            beyond = (q_next > limit) if direction == 1 else (q_next < limit)
            q_star[moving[~crossed & beyond]] = unbounded
            keep = ~crossed & ~beyond
            moving, q, g = moving[keep], q_next[keep], g_next[keep]
    bracketed = np.flatnonzero(np.isnan(q_star))
    if bracketed.size:
        q_star[bracketed] = illinois(
            lambda q, index: gap(q, bracketed[index]),
            end_a[bracketed],
            end_b[bracketed],
            g_a[bracketed],
            g_b[bracketed],
        )
    return q_star


def solve_c_star(c_map: IndexedFunction, size: int) -> Array:
    """Stable fixed points ``c* < 1`` of c-maps known to be chaotic (slope at c = 1 above 1).

    The c-map is increasing and convex on ``[0, 1]`` with ``c_map(0) >= 0`` and
    ``c_map(1) = 1``; when its slope at 1 exceeds 1 it crosses the diagonal once in
    ``[0, 1)``, from above, at the stable ``c*``.  The bracket is ``[0, 1 - delta]`` with
    ``delta`` the largest of ``1/2, 1e-1, ..., 1e-15`` where ``c_map(1 - delta) < 1 - delta``;
    if there is none, ``c*`` is within 1e-15 of 1 and 1.0 is returned.

    Args:
        c_map: ``(c, index) -> c_map_index(c)``, vectorised.
        size: number of problems.
    """
    g_zero = c_map(np.zeros(size), np.arange(size))
    c_star = np.where(g_zero <= 0, 0.0, np.nan)
    lo = np.zeros(size)
    g_lo = g_zero.copy()
    hi = np.ones(size)
    g_hi = np.zeros(size)
    searching = np.flatnonzero(np.isnan(c_star))
    for delta in [0.5] + [10.0**-k for k in range(1, 16)]:
        if searching.size == 0:
            break
        c = np.full(searching.size, 1 - delta)
        g = c_map(c, searching) - c
        below = g < 0
        hi[searching[below]], g_hi[searching[below]] = c[below], g[below]
        above = searching[~below]
        lo[above], g_lo[above] = c[~below], g[~below]
        searching = searching[~below]
    c_star[searching] = 1.0
    bracketed = np.flatnonzero(np.isnan(c_star))
    if bracketed.size:
        c_star[bracketed] = illinois(
            lambda c, index: c_map(c, bracketed[index]) - c,
            lo[bracketed],
            hi[bracketed],
            g_lo[bracketed],
            g_hi[bracketed],
        )
    return c_star
