"""Simulated, featurized and split data in memory, for tests, benchmarks and quick experiments.

Not used by any stage: the stages read and write files through :mod:`inferloop.data.stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.data.features import FeatureParams, TransactionFeaturizer
from inferloop.data.processed import build_processed, feature_columns
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.data.split import SplitParams, SplitResult, split_by_time

__all__ = [
    "LAYOUTS",
    "SimulatedSplits",
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


#: Preset name -> the function that lays simulated rows out like it.
LAYOUTS = {"handbook": handbook_log, "mobile_money": mobile_money_log}


def as_layout(raw: pd.DataFrame, preset: str) -> pd.DataFrame:
    """Simulated rows (:func:`simulate_transactions`) in the layout of ``preset``."""
    if preset not in LAYOUTS:
        raise ValueError(f"no layout {preset!r}; layouts: {sorted(LAYOUTS)}")
    return LAYOUTS[preset](raw)
