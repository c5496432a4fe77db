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
    "credit_table",
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


def credit_table(raw: pd.DataFrame) -> pd.DataFrame:
    """A static credit-scoring table laid out like the German credit data: no time, no ids.

    It shares nothing with the transaction log but its size (a tenth of ``raw``'s rows, at
    least 2,000). Each applicant's risk follows a known logistic model of the loan's duration
    and amount, the checking and savings accounts, the purpose and, as real credit data does,
    age: the young are riskier, so the fairness gates have a gap to measure.
    """
    n = max(2000, len(raw) // 10)
    rng = np.random.default_rng(len(raw))
    age = np.clip(19 + rng.gamma(2.2, 7.0, n), 19, 75).astype(int)  # median about 33
    sex = rng.choice(["male", "female"], n, p=[0.69, 0.31])
    checking = rng.choice(["none", "little", "moderate", "rich"], n, p=[0.39, 0.27, 0.27, 0.07])
    saving = rng.choice(["little", "moderate", "quite rich", "rich"], n, p=[0.7, 0.13, 0.08, 0.09])
    purpose = rng.choice(
        ["car", "radio/TV", "furniture/equipment", "business", "education", "repairs"],
        n,
        p=[0.34, 0.28, 0.18, 0.1, 0.06, 0.04],
    )
    duration = rng.choice(
        [6, 9, 12, 18, 24, 36, 48, 60], n, p=[0.08, 0.06, 0.25, 0.15, 0.22, 0.14, 0.07, 0.03]
    )
    amount = np.round(rng.lognormal(7.6, 0.75, n) * (1 + duration / 48), 0)
    margin = (
        -1.9
        + 0.035 * duration
        + 0.00007 * amount
        + np.select([checking == "little", checking == "none"], [0.9, -1.0], 0.0)
        + np.where(saving == "little", 0.5, -0.3)
        + np.select([purpose == "education", purpose == "car"], [0.6, 0.2], 0.0)
        + np.where(age < 25, 0.5, 0.0)
    )
    bad = rng.random(n) < 1 / (1 + np.exp(-margin))
    return pd.DataFrame(
        {
            "age": age,
            "sex": sex,
            "job": rng.choice([0, 1, 2, 3], n, p=[0.02, 0.2, 0.63, 0.15]),
            "housing": rng.choice(["own", "rent", "free"], n, p=[0.71, 0.18, 0.11]),
            "saving_accounts": saving,
            "checking_account": checking,
            "credit_amount": amount,
            "duration": duration,
            "purpose": purpose,
            "risk": np.where(bad, "bad", "good"),
        }
    )


#: Preset name -> the function that lays simulated rows out like it.
LAYOUTS = {
    "handbook": handbook_log,
    "mobile_money": mobile_money_log,
    "anonymised_log": anonymised_log,
    "credit_scoring": credit_table,
}


def as_layout(raw: pd.DataFrame, preset: str) -> pd.DataFrame:
    """Simulated rows (:func:`simulate_transactions`) in the layout of ``preset``."""
    if preset not in LAYOUTS:
        raise ValueError(f"no layout {preset!r}; layouts: {sorted(LAYOUTS)}")
    return LAYOUTS[preset](raw)
