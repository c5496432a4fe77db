"""Support of the scoring tests: the simulated world, the model and how to reach its store.

The model is trained once per session on the simulated days ``0 .. SCORING_SIM.n_days - 1``; "incoming" data
are the simulated days that follow (the simulator reproduces any window of days on its own),
so the model's point-in-time history ends right before the rows the tests score.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from inferloop.core import schema as s
from inferloop.data.features import FeatureParams
from inferloop.data.samples import simulated_splits
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.data.split import SplitParams
from inferloop.model import FraudModel

SCORING_SIM = SimulateParams(n_customers=600, n_terminals=400, n_days=28, seed=5)
SCORING_SPLIT = SplitParams(train_days=14, validation_days=3, test_days=3, gap_days=3)
MODEL_NAME = "fraud-detector"
CHAMPION_URI = f"models:/{MODEL_NAME}@champion"
PARAMS_YAML = """\
validate:
  max_amount: 50000.0
  min_timestamp: "2000-01-01"
  max_timestamp: "2100-01-01"
  require_target: true
data:
  timestamp_format: null
score:
  model_uri: "models:/fraud-detector@champion"
  chunk_rows: 100000
  spark_master: "local[2]"
stream:
  max_batch_rows: 500
  max_wait_ms: 50
  fold_rows: 2000
  poll_ms: 50
"""


@dataclass(frozen=True)
class Champion:
    """Where the session's registered model lives and how a subprocess reaches it."""

    root: Path
    tracking_uri: str
    version: str
    params_path: Path

    def env(self) -> dict[str, str]:
        """Environment for a CLI subprocess that must see this store (and nothing else)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            INFERLOOP_ROOT=str(self.root),
            MLFLOW_TRACKING_URI=self.tracking_uri,
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        return env


def fit_model() -> FraudModel:
    """A small LightGBM FraudModel trained on the simulated days before the incoming ones."""
    sim = SCORING_SIM
    data = simulated_splits(sim, FeatureParams(label_delay="3D"), SCORING_SPLIT)
    clf = lgb.LGBMClassifier(
        n_estimators=60,
        learning_rate=0.1,
        num_leaves=15,
        verbose=-1,
        seed=0,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
    )
    train = data.splits.train
    clf.fit(train[data.features], train[s.TARGET])
    return FraudModel(data.featurizer, clf, 0.5, "lightgbm")


def incoming_days(first: int, n_days: int) -> pd.DataFrame:
    """Raw transactions of the ``n_days`` days after the model's history (time-sorted).

    ``first`` counts from the day after the training data; labels are dropped (production
    traffic has none yet).
    """
    raw = simulate_transactions(SCORING_SIM, start_day=SCORING_SIM.n_days + first, n_days=n_days)
    return raw.drop(columns=[s.TARGET, s.LABEL_AVAILABLE_AT, s.FRAUD_SCENARIO])
