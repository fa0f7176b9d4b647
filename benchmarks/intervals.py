"""95% intervals for the benchmarks: a bootstrap over seeds, and a t-interval over repetitions.

Why the bootstrap over seeds carries the claims: the question is whether the method works on seeds
like these, and with 33 seeds the seeds are both the larger source of variance and a sample big
enough to resample; the repetitions (3, different `--seed`) are averaged within each seed first, so
the run-to-run randomness is inside every per-seed value. A t-interval over 3 repetitions has 2
degrees of freedom (t = 4.30): it is reported for quantities that are one number per run, such as
target tokens, whose spread across seeds cannot be separated out of the ledger.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

RESAMPLES = 4000


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of independent repetitions (a zero-width interval for one value)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def bootstrap(statistic: Callable[..., float], *samples: Sequence, paired: bool = True,
              seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Value and percentile bootstrap interval of `statistic(*samples)`.

    `paired`: the samples are per-seed arrays of the same seeds (resampled together); otherwise
    each sample is resampled on its own (e.g. evolved seeds against benchmark items). Statistics
    may return inf or nan (e.g. a ratio to a zero rate); percentiles are taken over what is
    finite when most of it is, else the interval is reported as nan.
    """
    arrays = tuple(np.asarray(s, dtype=float) for s in samples)
    value = float(statistic(*arrays))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # 0/1 outcomes that are all equal in a sample are a degenerate, not a wrong, interval.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(arrays, statistic, paired=paired, vectorized=False,
                              n_resamples=RESAMPLES, method="percentile",
                              random_state=np.random.default_rng(seed))
    draws = np.asarray(res.bootstrap_distribution, dtype=float)
    ok = draws[np.isfinite(draws)]
    if len(ok) < 0.95 * RESAMPLES:
        return value, float("nan"), float("nan")
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return value, float(lo), float(hi)


def nanmean(x: np.ndarray) -> float:
    """Mean over what was measured (a seed without an evolved item in any run is left out)."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")
