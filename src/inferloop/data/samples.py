"""Simulated, featurized and split data in memory, for tests, benchmarks and quick experiments.

Not used by any stage: the stages read and write files through :mod:`inferloop.data.stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.data.features import FeatureParams, TransactionFeaturizer, featurize_frame
from inferloop.data.processed import build_processed, feature_columns
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.data.split import SplitParams, SplitResult, split_by_time

__all__ = [
    "LAYOUTS",
    "SimulatedSplits",
    "anonymised_log",
    "as_layout",
    "handbook_log",
    "mobile_money_log",
    "simulated_splits",
]


@dataclass
class SimulatedSplits:
    """Everything a test or benchmark needs to train on simulated data in memory."""

    raw: pd.DataFrame
    splits: SplitResult
    featurizer: TransactionFeaturizer

    @property
    def features(self) -> list[str]:
        """Feature column names."""
        return feature_columns(self.featurizer)


def simulated_splits(
    sim: SimulateParams, feat: FeatureParams | None = None, split: SplitParams | None = None
) -> SimulatedSplits:
    """Simulate, featurize and split in memory (tests, benchmarks, notebooks)."""
    raw = simulate_transactions(sim)
    processed, featurizer = build_processed(raw, feat or FeatureParams())
    return SimulatedSplits(raw, split_by_time(processed, split or SplitParams()), featurizer)


# ------------------------------------------------- the simulator's rows in other layouts
# Each is the layout of a preset under configs/: the columns that layout has, named as it
# names them, and nothing more (what the layout lacks is dropped, never filled in).


def handbook_log(raw: pd.DataFrame) -> pd.DataFrame:
    """The Fraud Detection Handbook's layout: ids, datetime, amount, label and its scenario."""
    start = raw[s.TIMESTAMP].min().normalize()
    seconds = (raw[s.TIMESTAMP] - start).dt.total_seconds().astype("int64")
    return pd.DataFrame(
        {
            "TRANSACTION_ID": raw[s.TRANSACTION_ID],
            "TX_DATETIME": raw[s.TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": raw[s.CUSTOMER_ID],
            "TERMINAL_ID": raw[s.TERMINAL_ID],
            "TX_AMOUNT": raw[s.AMOUNT].round(2),
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": seconds // 86400,
            "TX_FRAUD": raw[s.TARGET],
            "TX_FRAUD_SCENARIO": raw[s.FRAUD_SCENARIO],
        }
    )


def mobile_money_log(raw: pd.DataFrame) -> pd.DataFrame:
    """PaySim's layout: hourly step, type, accounts with balances, label; no transaction id."""
    rng = np.random.default_rng(0)
    start = raw[s.TIMESTAMP].min().normalize()
    step = ((raw[s.TIMESTAMP] - start).dt.total_seconds() // 3600).astype("int64") + 1
    kinds = {"chip": "PAYMENT", "contactless": "CASH_OUT", "online": "TRANSFER"}
    amount = raw[s.AMOUNT].round(2)
    before = (rng.gamma(2.0, 500.0, len(raw)) + amount).round(2)
    dest = rng.gamma(2.0, 2000.0, len(raw)).round(2)
    return pd.DataFrame(
        {
            "step": step,
            "type": raw[s.CHANNEL].map(kinds),
            "amount": amount,
            "nameOrig": "C" + raw[s.CUSTOMER_ID].astype(str),
            "oldbalanceOrg": before,
            "newbalanceOrig": (before - amount).round(2),
            "nameDest": "M" + raw[s.TERMINAL_ID].astype(str),
            "oldbalanceDest": dest,
            "newbalanceDest": (dest + amount).round(2),
            "isFraud": raw[s.TARGET],
            "isFlaggedFraud": 0,
        }
    )


#: How many anonymised components :func:`anonymised_log` gives (as the public card log has).
N_COMPONENTS = 28


def anonymised_log(raw: pd.DataFrame) -> pd.DataFrame:
    """A log published with its features anonymised: seconds since the start, ``V1``..``V28``,
    the amount and a class label; no ids of any kind.

    As in the public European-cardholder log, the components are a PCA of features the
    publisher computed and withheld: here the card-fraud featurizer's point-in-time features
    of the same rows, standardized, projected on their first 28 principal axes. The label's
    signal survives, the entity keys do not.
    """
    # point-in-time features of the rows in their own order (no re-sort: the rows stay aligned)
    features = featurize_frame(raw, FeatureParams())[0].to_numpy(dtype=np.float64)
    spread = features.std(axis=0)
    standard = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    _, _, axes = np.linalg.svd(standard, full_matrices=False)
    components = standard @ axes[:N_COMPONENTS].T
    start = raw[s.TIMESTAMP].min().normalize()
    columns = {"Time": (raw[s.TIMESTAMP] - start).dt.total_seconds().astype("int64").to_numpy()}
    columns.update({f"V{i + 1}": components[:, i].round(6) for i in range(components.shape[1])})
    columns["Amount"] = raw[s.AMOUNT].round(2).to_numpy()
    columns["Class"] = raw[s.TARGET].to_numpy()
    return pd.DataFrame(columns)


#: Preset name -> the function that lays simulated rows out like it.
LAYOUTS = {
    "handbook": handbook_log,
    "mobile_money": mobile_money_log,
    "anonymised_log": anonymised_log,
}


def as_layout(raw: pd.DataFrame, preset: str) -> pd.DataFrame:
    """Simulated rows (:func:`simulate_transactions`) in the layout of ``preset``."""
    if preset not in LAYOUTS:
        raise ValueError(f"no layout {preset!r}; layouts: {sorted(LAYOUTS)}")
    return LAYOUTS[preset](raw)
