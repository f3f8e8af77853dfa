"""Statistics of an experiment's results, with scipy (no home-made distributions).

- Conversion interval: Wilson score interval at 95% (z from `scipy.stats.norm.ppf`), which stays inside
  [0, 1] and behaves with few visitors, unlike the normal approximation.
- Difference from the control: Fisher's exact test on the 2×2 table (converted / not, variant / control),
  two-sided (`scipy.stats.fisher_exact`): exact at any sample size, so no "expected count ≥ 5" caveat."""

from __future__ import annotations

import math

from scipy import stats

CONFIDENCE = 0.95


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    if trials == 0:
        return (0.0, 0.0)
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def p_value(control: tuple[int, int], variant: tuple[int, int]) -> float | None:
    """Two-sided Fisher exact p-value for (converted, visitors) of a variant against the control; None
    when either arm has no visitors (nothing to compare)."""
    (c_conv, c_n), (v_conv, v_n) = control, variant
    if c_n == 0 or v_n == 0:
        return None
    table = [[v_conv, v_n - v_conv], [c_conv, c_n - c_conv]]
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)
