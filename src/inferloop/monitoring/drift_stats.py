"""Drift statistics on binned shares and quantiles: PSI, Jensen-Shannon, normalised Wasserstein.

Pure functions of small arrays; :mod:`inferloop.monitoring.drift` computes their inputs in one
pass over a batch against a fitted reference profile.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "PSI_EPSILON",
    "FloatArray",
    "jensen_shannon",
    "psi",
    "quantile_grid",
    "wasserstein_normed",
]


#: Bin shares are floored at this value inside PSI (an empty bin would make it infinite).
PSI_EPSILON: Final = 1e-4
FloatArray = NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# statistics on binned shares
# --------------------------------------------------------------------------------------------


def psi(expected: FloatArray, actual: FloatArray, eps: float = PSI_EPSILON) -> float:
    """Population stability index between two vectors of bin shares.

    Parameters
    ----------
    expected, actual : numpy.ndarray
        Shares of the same bins in the reference and the current data (each sums to 1).
    eps : float, default 1e-4
        Floor applied to both shares so that empty bins stay finite.

    Returns
    -------
    float
        ``sum((actual - expected) * ln(actual / expected))``, >= 0.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def _kl(p: FloatArray, q: FloatArray) -> float:
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))


def jensen_shannon(expected: FloatArray, actual: FloatArray) -> float:
    """Jensen-Shannon distance (square root of the divergence, natural log) between shares.

    Parameters
    ----------
    expected, actual : numpy.ndarray
        Shares of the same bins; each sums to 1.

    Returns
    -------
    float
        A value in ``[0, sqrt(ln 2)]``; 0 for identical distributions.
    """
    p = np.asarray(expected, dtype=np.float64)
    q = np.asarray(actual, dtype=np.float64)
    m = (p + q) / 2
    return float(np.sqrt(max(0.5 * _kl(p, m) + 0.5 * _kl(q, m), 0.0)))


def quantile_grid(n_quantiles: int) -> FloatArray:
    """Mid-point probabilities ``(i + 0.5) / n`` of ``n`` equal slices of ``[0, 1]``."""
    return (np.arange(n_quantiles, dtype=np.float64) + 0.5) / n_quantiles


def wasserstein_normed(ref_quantiles: FloatArray, cur_quantiles: FloatArray, scale: float) -> float:
    """Wasserstein-1 distance between two quantile functions, divided by ``scale``.

    ``W1 = integral over u of |F_ref^-1(u) - F_cur^-1(u)|``, approximated by the mean absolute
    difference of quantiles on the same equally spaced probability grid.

    Parameters
    ----------
    ref_quantiles, cur_quantiles : numpy.ndarray
        Quantiles of both samples at the same probabilities.
    scale : float
        Normaliser, the reference standard deviation (a zero scale is replaced by 1).

    Returns
    -------
    float
    """
    distance = float(np.mean(np.abs(np.asarray(ref_quantiles) - np.asarray(cur_quantiles))))
    return distance / (scale if scale > 0 else 1.0)


# --------------------------------------------------------------------------------------------
# per-column profiles
# --------------------------------------------------------------------------------------------
