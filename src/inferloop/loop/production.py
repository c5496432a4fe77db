"""The production simulation: weeks of traffic after training, through the whole loop.

Each week the simulator produces the next seven days (continuing the training data exactly,
with a drift scenario from a chosen week). The champion scores them with the live scorer,
through the feature state (``state.location``, started afresh and seeded from the first
champion); the week's labels then enter through the label feed, each usable from the time it
arrives, and land in the labels table ``data/labels/`` that retraining reads;
monitoring compares the last two weeks with the champion's reference window (labels of the
older week have arrived by then); the policy decides; retraining runs the retrain DVC pipeline
and the challenger is promoted only through the gates. The result is a timeline: week,
champion version, drift share, AP, fairness gap, action.

The simulation runs in a world of its own. It starts from a copy of the serving champion
(``fraud-detector@champion``, trained by ``dvc repro`` on the days before the simulated
weeks) under a registered name of its own (``production.model_name``), and its retraining
registers there. The models it trains on simulated weeks therefore never serve the main
pipeline, and a second run, or a run after ``make run``, starts again from the main
champion: no week is scored by a model that was trained on it. The first simulated day must
come after the last day the serving champion has seen (its ``trained_through`` tag), or the
run refuses to start.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.config import load_section
from inferloop.core.dataset import CARD_FRAUD
from inferloop.core.registry import (
    CHAMPION,
    FULL_MODEL,
    TAG_TRAINED_THROUGH,
    alias_version,
    copy_as_champion,
    validation_figures,
    version_tags,
)
from inferloop.core.storage import write_parquet
from inferloop.data.contract import load_contract, validate_transactions
from inferloop.data.simulate import SimulateParams, simulate_transactions
from inferloop.evaluation.metrics import compute_metrics
from inferloop.loop.retrain import RetrainParams, labelled_window, run_retrain
from inferloop.model import FraudModel, LiveScorer
from inferloop.monitoring.drift import ReferenceProfile
from inferloop.monitoring.estimate import realized_performance
from inferloop.monitoring.monitor import MonitorResult
from inferloop.monitoring.params import MonitorParams, load_monitor_params
from inferloop.monitoring.policy import fairness_breached
from inferloop.monitoring.stage import monitor_scored
from inferloop.scoring.live_state import (
    attach_labels,
    deliver_labels,
    load_state_params,
    read_label_table,
    seed_state,
)
from inferloop.state.base import FeatureState
from inferloop.state.config import open_state, resolve_location

__all__ = [
    "LABELS_DIR",
    "SCENARIOS",
    "Champion",
    "ProductionLoop",
    "ProductionParams",
    "ProductionRun",
    "fresh_state",
    "load_champion",
    "scenario_params",
    "score_week",
    "start_champion",
]


#: The labels table the simulation's label feed appends to (one part per week).
LABELS_DIR = Path("data/labels/production")

SCENARIOS = (
    "none",
    "new_fraud_pattern",
    "customer_mix",
    "seasonal_amount",
    "merchant_shift",
    "bias",
)


@dataclass(frozen=True)
class ProductionParams:
    """The ``production`` section of params.yaml."""

    weeks: int = 6
    scenario: str = "new_fraud_pattern"
    drift_week: int = 1
    out_dir: str = "reports/production"
    model_name: str = "fraud-detector-production"


def scenario_params(sim: SimulateParams, scenario: str, start_day: int) -> SimulateParams:
    """``sim`` with one drift (or bias) scenario switched on from ``start_day``."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {SCENARIOS}")
    if scenario == "none":
        return sim
    if scenario == "bias":
        return replace(sim, bias=replace(sim.bias, enabled=True, start_day=start_day))
    drift = getattr(sim.drift, scenario)
    return replace(
        sim,
        drift=replace(sim.drift, **{scenario: replace(drift, enabled=True, start_day=start_day)}),
    )


def fresh_state(root: Path, params_path: str) -> FeatureState | None:
    """The configured feature state, emptied: each simulation is a world of its own.

    A SQLite file is deleted; a Redis state loses the keys under its prefix. ``none`` runs
    the simulation stateless (the in-memory history of each champion).
    """
    params = load_state_params(root / params_path)
    location = resolve_location(params.location, root)
    if location.startswith("sqlite:///"):
        path = Path(location[len("sqlite:///") :])
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    state = open_state(location, redis_prefix=params.redis_prefix)
    clear = getattr(state, "clear", None)
    if clear is not None:
        clear()
    return state


@dataclass
class Champion:
    """The serving model with its live scorer and what monitoring needs to know."""

    version: str
    model: FraudModel
    validation: dict[str, float]
    reference: pd.DataFrame
    profile: ReferenceProfile
    state: FeatureState | None = None
    name: str = FULL_MODEL
    trained_through: str = ""

    scorer: LiveScorer = field(init=False)

    def __post_init__(self) -> None:
        label = f"{self.name}:{self.version}"
        self.scorer = LiveScorer(self.model, self.state, label=label)

    @property
    def features(self) -> list[str]:
        """Model input features."""
        return self.model.feature_names


def start_champion(name: str, first_day: pd.Timestamp) -> str:
    """Copy the serving ``fraud-detector@champion`` into ``name`` as its champion.

    Raises
    ------
    RuntimeError
        Without a serving champion, or when it has seen data on or after ``first_day`` (it
        would score weeks it was trained on).
    """
    version = alias_version(FULL_MODEL, CHAMPION)
    if version is None:
        raise RuntimeError(f"no {FULL_MODEL}@{CHAMPION} registered: run `make run` first")
    seen = version_tags(FULL_MODEL, version).get(TAG_TRAINED_THROUGH, "")
    if seen and pd.Timestamp(seen) >= first_day.normalize():
        raise RuntimeError(
            f"{FULL_MODEL} v{version} (the champion) was trained on data up to {seen}, but the "
            f"simulation starts on {first_day.date()}: it would score days it was trained on. "
            f"Promote a version trained by `dvc repro` (`inferloop promote VERSION`) first."
        )
    return copy_as_champion(FULL_MODEL, version, name, {"simulation_start": str(first_day.date())})


def load_champion(
    reference_path: Path,
    params: MonitorParams,
    state: FeatureState | None = None,
    name: str = FULL_MODEL,
) -> Champion:
    """Load ``name@champion`` and score its reference window once."""
    import mlflow

    version = alias_version(name, CHAMPION)
    if version is None:
        raise RuntimeError(f"no {name}@{CHAMPION} registered: run `make run` (dvc repro) first")
    model = copy.deepcopy(
        mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").unwrap_python_model()
    )
    # the threshold the model applies is the one monitoring judges it by
    validation = {**validation_figures(name, version), "threshold": model.threshold}
    reference = pd.read_parquet(reference_path)
    reference = reference.assign(**{s.SCORE: model.scores_for_features(reference)})
    reference[s.DECISION] = (reference[s.SCORE] >= model.threshold).astype(np.int8)
    profile = ReferenceProfile.fit(
        reference, numeric_cols=model.feature_names, n_bins=params.n_bins, score_col=s.SCORE
    )
    seen = version_tags(name, version).get(TAG_TRAINED_THROUGH, "")
    return Champion(version, model, validation, reference, profile, state, name, seen)


def score_week(champion: Champion, valid: pd.DataFrame) -> pd.DataFrame:
    """Score validated rows with the champion's live scorer; the rows then join its history.

    Returns the rows with their features (monitoring profiles them), score, decision and the
    model that made them. Labels in the history are used only once their delay has passed.
    """
    scored = champion.scorer.score(valid, with_features=True, with_reasons=True)
    # a numeric feature of the dataset is a raw column too (same values): keep it once
    own = scored.drop(columns=[c for c in scored.columns if c in valid.columns])
    return pd.concat([valid, own], axis=1).assign(
        **{
            s.MODEL_NAME: champion.name,
            s.MODEL_VERSION: champion.version,
            s.SCORED_AT: pd.Timestamp.now(tz="UTC").tz_localize(None),
        }
    )


def _week_ap(scored: pd.DataFrame) -> tuple[float, float]:
    m = compute_metrics(
        scored[s.TARGET], scored[s.SCORE], 0.5, scored[s.CUSTOMER_ID], scored[s.TIMESTAMP]
    )
    return m.average_precision, m.roc_auc


def _estimated(estimate: dict[str, Any] | None) -> dict[str, float]:
    """The week's estimated precision, recall and AP (before its labels), NaN without one."""
    part = estimate or {}
    return {
        f"est_{short}": np.nan if part.get(name) is None else float(part[name])
        for short, name in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("ap", "average_precision"),
        )
    }


def _realized(scored: pd.DataFrame, threshold: float) -> dict[str, float]:
    """The week's precision and recall at the champion's threshold, all labels known."""
    found = realized_performance(scored[s.TARGET], scored[s.SCORE], threshold)
    return {"precision": found["precision"], "recall": found["recall"]}


def _max_gap(result: MonitorResult) -> tuple[float, float, float]:
    """The largest equalized-odds gap over the attributes, with its interval (NaNs if none)."""
    gaps = [
        (f.equalized_odds_difference, *f.interval("equalized_odds_difference"))
        for f in result.fairness.values()
        if np.isfinite(f.equalized_odds_difference)
    ]
    return max(gaps) if gaps else (np.nan, np.nan, np.nan)


@dataclass
class ProductionRun:
    """The timeline and where its files are."""

    timeline: pd.DataFrame
    out_dir: Path


class ProductionLoop:
    """State of one production simulation (kept in one place so each step stays small)."""

    def __init__(
        self, root: Path, params_path: str, scenario: str, weeks: int, drift_week: int
    ) -> None:
        self.root = root
        self.params_path = params_path
        self.sim = load_section(SimulateParams, "simulate", root / params_path)
        self.monitor = load_monitor_params(root / params_path)
        self.retrain = load_section(RetrainParams, "retrain", root / params_path)
        self.contract = load_contract(root / params_path)
        if self.contract.dataset.name != CARD_FRAUD.name:
            # the weeks it sends are the simulator's: a model of another layout cannot be judged
            raise ValueError(
                "the production simulation sends simulated card-fraud weeks: it needs the "
                f"card_fraud dataset, and dataset.name is {self.contract.dataset.name!r} "
                "(monitor your own data with `inferloop monitor --incoming`)"
            )
        self.prod = load_section(ProductionParams, "production", root / params_path)
        self.out = root / self.prod.out_dir
        self.first_day = self.sim.n_days
        self.world = scenario_params(self.sim, scenario, self.first_day + 7 * drift_week)
        self.weeks, self.scenario, self.drift_week = weeks, scenario, drift_week
        self.history_raw = [pd.read_parquet(root / "data/validated/transactions.parquet")]
        self.labels_dir = root / LABELS_DIR
        self.state = fresh_state(root, params_path)
        self.name = self.prod.model_name
        start_champion(self.name, self._day(0))
        self.champion = load_champion(
            root / "data/processed/split/validation.parquet", self.monitor, self.state, self.name
        )
        if self.state is not None:
            seed_state(self.state, self.champion.model)
        self.summaries: list[dict[str, Any]] = []
        self.last_summary: dict[str, Any] | None = None  # of any champion: the escalation count
        self.previous: pd.DataFrame | None = None
        self.scored_weeks: list[pd.DataFrame] = []
        self.thresholds: list[float] = []  # of the champion that scored each week
        self.rows: list[dict[str, Any]] = []

    def _day(self, w: int) -> pd.Timestamp:
        """The first day of simulated week ``w``."""
        return pd.Timestamp(self.sim.start_date) + pd.Timedelta(days=self.first_day + 7 * w)

    def week(self, w: int) -> None:
        start = self.first_day + 7 * w
        raw = simulate_transactions(self.world, start_day=start, n_days=7)
        write_parquet(
            raw.drop(columns=[s.TARGET, s.LABEL_AVAILABLE_AT, s.FRAUD_SCENARIO]),
            self.root / f"data/incoming/week_{w:02d}.parquet",
        )
        checked = validate_transactions(raw, self.contract)
        valid = checked.valid
        self.history_raw.append(valid.drop(columns=[s.TARGET, s.LABEL_AVAILABLE_AT]))
        write_parquet(valid, self.root / f"data/production/labelled/week_{w:02d}.parquet")
        scored = score_week(self.champion, valid)
        # the week's chargebacks arrive over the next week: through the label feed, each one
        # usable from its label_available_at (the store and retraining both filter on it)
        labels = valid[[s.TRANSACTION_ID, s.TARGET, s.LABEL_AVAILABLE_AT]]
        deliver_labels(self.state, labels, table_dir=self.labels_dir, name=f"week_{w:02d}")
        write_parquet(
            scored.drop(columns=self.champion.features),
            self.root / f"data/production/predictions/week_{w:02d}.parquet",
        )
        window = (
            scored
            if self.previous is None
            else pd.concat([self.previous, scored], ignore_index=True)
        )
        as_of = pd.Timestamp(self.sim.start_date) + pd.Timedelta(days=start + 7)
        result = self._monitor(window, w, as_of, len(raw) - len(valid))
        self.scored_weeks.append(scored)
        self.thresholds.append(self.champion.model.threshold)
        self.previous = scored
        row = self._row(w, start, scored, result)
        if result.action.kind == "retrain" and w < self.weeks - 1:
            row.update(self._retrain(result, as_of))
        self.rows.append(row)

    def _monitor(
        self, window: pd.DataFrame, w: int, as_of: pd.Timestamp, quarantined: int
    ) -> MonitorResult:
        c = self.champion
        result = monitor_scored(
            window,
            c.reference,
            params=self.monitor,
            model_name=c.name,
            model_version=c.version,
            out_dir=self.out / "monitoring",
            workspace_dir=self.root / "reports/evidently",
            batch_name=f"week_{w:02d}",
            as_of=as_of,
            feature_cols=[*c.features],
            profile=c.profile,
            validation=c.validation,
            history=self.summaries,
            project_name="production",
            previous=self.last_summary,
            calibration=c.model.calibration,
            quarantined=quarantined,
        )
        self.summaries.append(result.summary)
        self.last_summary = result.summary
        return result

    def _row(
        self, w: int, start: int, scored: pd.DataFrame, result: MonitorResult
    ) -> dict[str, Any]:
        day0 = pd.Timestamp(self.sim.start_date) + pd.Timedelta(days=start)
        gap, gap_low, gap_high = _max_gap(result)
        return {
            "week": w,
            "start": str(day0.date()),
            "drifted": self.scenario != "none" and w >= self.drift_week,
            "champion": self.champion.version,
            "champion_trained_through": self.champion.trained_through,
            "rows": len(scored),
            "fraud_rate": float(scored[s.TARGET].mean()),
            "drift_share": float(result.drift.drift_share),
            "score_psi": float(
                result.summary["checks"].get("score_psi", {}).get("value") or np.nan
            ),
            "fairness_gap": gap,
            "fairness_gap_low": gap_low,
            "fairness_gap_high": gap_high,
            "alerts": int(scored[s.DECISION].sum()),
            **_estimated(result.summary.get("estimate")),
            "status": result.status,
            "action": result.action.kind,
            "reasons": "; ".join(result.action.reasons),
            "retrained": "",
        }

    def _retrain(self, result: MonitorResult, as_of: pd.Timestamp) -> dict[str, Any]:
        weeks = pd.concat(self.history_raw[1:], ignore_index=True)
        labelled = attach_labels(weeks, read_label_table(self.labels_dir))
        window = labelled_window(
            [self.history_raw[0], labelled], as_of, self.retrain.window_days,
            self.sim.label_delay_days,
        )  # fmt: skip
        mitigate = self.monitor.mitigate_on_fairness and fairness_breached(result.summary)
        outcome = run_retrain(
            self.root,
            window,
            params_path=self.params_path,
            trigger_report=str(result.report_path.relative_to(self.root)),
            reason="; ".join(result.action.reasons),
            model_name=self.name,
            candidates=self.retrain.mitigated_candidates if mitigate else None,
        )
        if outcome.promoted:
            self._switch_champion(as_of)
        verdict = "promoted" if outcome.promoted else "rejected"
        return {"retrained": f"v{outcome.version}{' mitigated' if mitigate else ''} {verdict}"}

    def _switch_champion(self, as_of: pd.Timestamp) -> None:
        self.champion = load_champion(
            self.root / "data/retrain/processed/split/validation.parquet",
            self.monitor,
            self.state,
            self.name,
        )
        if self.state is None:  # stateless: the new model's history ends a label delay ago
            self._catch_up_history()
        self.summaries = []  # the policy judges the new champion on its own record
        self.previous = None  # ...and on rows it scored itself, not on its predecessor's

    def _catch_up_history(self) -> None:
        """Bring the in-memory history of a new champion up to now (no feature state)."""
        newest = int(self.champion.model.featurizer.history_.max_time)
        recent = pd.concat(self.history_raw[1:], ignore_index=True)
        recent = attach_labels(recent, read_label_table(self.labels_dir))
        seconds = pd.to_datetime(recent[s.TIMESTAMP]).astype("datetime64[s]").astype(np.int64)
        if (seconds > newest).any():
            self.champion.model.featurizer.update(recent[seconds > newest])

    def timeline(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows)
        ap_auc = [_week_ap(frame) for frame in self.scored_weeks]
        table.insert(6, "ap", [a for a, _ in ap_auc])
        table.insert(7, "roc_auc", [b for _, b in ap_auc])
        realized = pd.DataFrame(
            [_realized(f, t) for f, t in zip(self.scored_weeks, self.thresholds, strict=True)]
        )
        at = table.columns.get_loc("est_precision")
        assert isinstance(at, int)
        table.insert(at, "precision", realized["precision"].to_numpy())
        table.insert(at + 1, "recall", realized["recall"].to_numpy())
        return table
