"""The deployable fraud model: ONE MLflow pyfunc that takes raw transaction columns.

:class:`FraudModel` carries the fitted :class:`~inferloop.data.features.TransactionFeaturizer`
(with its point-in-time history), the classifier and the operating threshold. Batch scoring,
the stream and ``mlflow models serve`` all call the same :meth:`FraudModel.score_frame`, which
validates its input first (:func:`read_transactions`, reading each column once); ``predict``
turns :class:`InvalidInput` into MLflow's ``INVALID_PARAMETER_VALUE``, an HTTP 400 that names
the problem. The logged signature leaves the input to this check by default: MLflow's own
column-by-column enforcement costs more than the model per request
(:func:`inferloop.model_logging.fraud_signature`).

Serialisation: MLflow cloudpickles the ``PythonModel`` object, and the model folder carries
a copy of the ``inferloop`` package (``code_paths``), so it loads in any process that has the
runtime dependencies listed in its ``requirements.txt`` — without ``inferloop`` installed.
``mlflow.sklearn`` is not used because its default skops format rejects LightGBM estimators,
and the deployable unit is featurizer + classifier + threshold, not a bare estimator.
Pickle-based formats execute code on load: load models only from a registry you trust.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from inferloop.core import schema as s
from inferloop.core.dataset import DatasetSpec
from inferloop.data.contract import ContractParams
from inferloop.data.events import (
    concat_raw,
    entity_keys_of,
    first_of_each,
    take_raw,
    text_keys,
)
from inferloop.data.features import TransactionFeaturizer
from inferloop.data.rows import (
    SMALL_BATCH_ROWS,
    InvalidInput,
    Transactions,
    as_frame,
    read_request,
    read_transactions,
)
from inferloop.evaluation.calibration import ScoreCalibration
from inferloop.evaluation.group_thresholds import GroupThresholds
from inferloop.evaluation.reasons import METHODS, prepare_explanations, reason_columns
from inferloop.state.base import FeatureState, ScoredEvents, Snapshot, StateRequest
from inferloop.state.config import STATE_ENV, STATELESS, open_state, resolve_location

__all__ = [
    "ARROW_STRINGS_ENV",
    "EXPLAIN_METHOD_PARAM",
    "EXPLAIN_PARAM",
    "MAX_ROWS_ENV",
    "MODEL_LABEL_ENV",
    "OUTPUT_COLUMNS",
    "SERVER_MODEL_PATH_ENV",
    "SERVING_ENV",
    "FraudModel",
    "LiveScorer",
    "epoch_seconds",
    "history_end",
    "positive_scores",
]


OUTPUT_COLUMNS = (s.TRANSACTION_ID, s.SCORE, s.DECISION)
#: Environment variable: the most rows one ``predict`` call may carry (a request to the model
#: server; ``inferloop serve`` sets it). Unset means no limit, as for batch users of the pyfunc.
MAX_ROWS_ENV = "INFERLOOP_SERVING_MAX_ROWS"
#: Set to ``true`` by MLflow's scoring server in its worker processes (and while MLflow checks
#: an input example at log time); the model then answers with JSON-ready records.
SERVING_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"
#: Set by ``mlflow models serve`` for its worker processes: the model folder they load.
SERVER_MODEL_PATH_ENV = "__pyfunc_model_path__"
#: Opt-out of the server's plain-string pandas setting (see ``FraudModel.load_context``).
ARROW_STRINGS_ENV = "INFERLOOP_SERVER_ARROW_STRINGS"
#: Name and version of the served model (``inferloop serve`` sets it), kept with each event.
MODEL_LABEL_ENV = "INFERLOOP_MODEL_LABEL"
#: The MLflow request param that asks for reason codes: ``"params": {"explain": true}``.
EXPLAIN_PARAM = "explain"
#: The request param that picks how LightGBM explains (``treeshap``, or the fast ``path``).
EXPLAIN_METHOD_PARAM = "explain_method"


def positive_scores(
    estimator: Any, features: pd.DataFrame | np.ndarray, feature_names: list[str]
) -> np.ndarray:
    """Fraud probability from any fitted classifier, fastest path first.

    Parameters
    ----------
    estimator
        Fitted classifier: a LightGBM model (``booster_``), an edge classifier
        (``predict_scores`` on a float matrix) or anything with ``predict_proba``.
    features
        Featurized rows: a frame, or a float matrix whose columns are ``feature_names``.
    feature_names
        Column names for estimators that need a frame.

    Returns
    -------
    numpy.ndarray
        Probability of fraud per row.

    Notes
    -----
    LightGBM boosters are called directly on the float matrix (skipping the scikit-learn
    wrapper's per-call validation, which costs more than the trees for one row), and on one
    thread for small batches: starting OpenMP threads for one row costs far more than the
    trees, and a server already runs one worker process per core.
    """
    booster = getattr(estimator, "booster_", None)
    if booster is not None:
        matrix = (
            features.to_numpy(dtype=np.float64) if isinstance(features, pd.DataFrame) else features
        )
        threads = {"num_threads": 1} if len(matrix) <= SMALL_BATCH_ROWS else {}
        return np.asarray(booster.predict(matrix, **threads), dtype=np.float64)
    predict_scores = getattr(estimator, "predict_scores", None)
    if predict_scores is not None:  # the edge classifiers score float rows directly
        matrix = features.to_numpy(np.float64) if isinstance(features, pd.DataFrame) else features
        return np.asarray(predict_scores(matrix), dtype=np.float64)
    if isinstance(features, np.ndarray):
        features = pd.DataFrame(features, columns=feature_names, copy=False)
    return np.asarray(estimator.predict_proba(features)[:, 1], dtype=np.float64)


try:  # mlflow is a runtime dependency; the import guard keeps ``import inferloop.model`` cheap to type-check
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is always installed with inferloop
    PythonModel = object  # type: ignore[assignment,misc]


class FraudModel(PythonModel):
    """Raw transactions in; ``transaction_id``, ``score`` and ``decision`` out.

    Parameters
    ----------
    featurizer:
        Fitted featurizer holding the point-in-time history.
    estimator:
        Fitted classifier with ``predict_proba`` (or a LightGBM ``booster_``).
    threshold:
        Alert when ``score >= threshold``.
    candidate:
        The candidate's name (``lightgbm``, ``logistic``, ``mlp``) for model cards and tags.
    contract:
        The data contract's limits (the ``validate`` params) the model applies to requests.
    postprocess:
        Per-group thresholds (:mod:`inferloop.evaluation.group_thresholds`): the score becomes
        a per-group map of the estimator's, so every request must carry the attribute.
    calibration:
        The map from the served score to a probability, fitted on the validation window
        (:mod:`inferloop.evaluation.calibration`). Monitoring estimates performance with it
        before labels arrive; it never changes the score or the decision.
    """

    def __init__(
        self,
        featurizer: TransactionFeaturizer,
        estimator: Any,
        threshold: float,
        candidate: str,
        contract: ContractParams | None = None,
        postprocess: GroupThresholds | None = None,
        calibration: ScoreCalibration | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.threshold = float(threshold)
        self.candidate = candidate
        self.contract_ = contract
        self.postprocess_ = postprocess
        self.calibration_ = calibration

    def load_context(self, context: Any) -> None:
        """Called by MLflow once per process that loads the model.

        Inside ``mlflow models serve`` (its worker processes carry ``__pyfunc_model_path__``)
        pandas is told to keep text columns as plain Python strings. Each request becomes a
        DataFrame there, and pandas 3's default Arrow-backed strings cost more per one-row
        request to build and read back than featurizing and scoring (``docs/serving.md``). Scores are identical
        (the HTTP tests compare them with :meth:`score_frame`). Any other process -- a
        notebook, batch scoring -- is left as it is: a library must not change a user's pandas.
        Set ``INFERLOOP_SERVER_ARROW_STRINGS=1`` to keep pandas' default in the server too.
        A server worker also builds what reason codes need (the TreeSHAP kernel) before its
        first request rather than during the first request that asks for them.
        """
        if os.environ.get(SERVER_MODEL_PATH_ENV):
            prepare_explanations(self.estimator)
            if not os.environ.get(ARROW_STRINGS_ENV):
                with suppress(KeyError, ValueError, pd.errors.OptionError):
                    pd.set_option("future.infer_string", False)
        self.open_live_state(os.environ.get(STATE_ENV, STATELESS))

    def open_live_state(self, location: str) -> None:
        """Score against the feature state at ``location`` from now on (``none``: stateless).

        :meth:`load_context` calls it with ``$INFERLOOP_FEATURE_STATE``: the store is chosen
        where the model is served, never recorded in the model. Unset means stateless -- the
        history frozen at training time -- so the model still loads anywhere.
        """
        state = open_state(resolve_location(location))
        self._live = None if state is None else LiveScorer(self, state)

    def __getstate__(self) -> dict[str, Any]:
        # an open store is a connection of this process, never part of the model
        return {k: v for k, v in self.__dict__.items() if k != "_live"}

    @property
    def feature_names(self) -> list[str]:
        """Model input features, in order."""
        return list(self.featurizer.feature_names_out_)

    @property
    def postprocess(self) -> GroupThresholds | None:
        """The per-group thresholds applied at decision time, if any."""
        return getattr(self, "postprocess_", None)

    @property
    def calibration(self) -> ScoreCalibration | None:
        """The score-to-probability map monitoring estimates with (None for older models)."""
        return getattr(self, "calibration_", None)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The raw columns a request must carry (the post-processing attribute too)."""
        post = self.postprocess
        columns = self.dataset_spec.scoring_columns
        return columns if post is None else (*columns, post.attribute)

    @property
    def dataset_spec(self) -> DatasetSpec:
        """The dataset spec the model reads requests by (its featurizer's)."""
        return self.featurizer.dataset_spec

    def scores_for_features(self, features: pd.DataFrame) -> np.ndarray:
        """Scores for an already featurized frame (training-time evaluation).

        A post-processed model reads its attribute from the same frame.
        """
        scores = positive_scores(self.estimator, features[self.feature_names], self.feature_names)
        post = self.postprocess
        return scores if post is None else post.adjust(scores, features[post.attribute].to_numpy())

    def final_scores(
        self, scores: np.ndarray, tx: Transactions, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """The estimator's ``scores`` of ``tx`` (or of its ``rows``) after post-processing."""
        post = self.postprocess
        if post is None:
            return scores
        groups = self.decision_groups(tx)
        return post.adjust(scores, groups if rows is None else groups[rows])

    def decision_groups(self, tx: Transactions) -> np.ndarray:
        """The post-processing attribute of each row; :class:`InvalidInput` if not sent."""
        post = self.postprocess
        assert post is not None, "decision_groups needs a post-processed model"
        groups = tx.attributes.get(post.attribute)
        if groups is None:
            raise InvalidInput(
                f"missing required column(s): ['{post.attribute}']: this model decides with "
                f"per-group thresholds on {post.attribute} (see its model card)"
            )
        return groups

    def score_frame(
        self,
        frame: pd.DataFrame,
        context: pd.DataFrame | None = None,
        *,
        with_features: bool = False,
    ) -> pd.DataFrame:
        """Score raw transactions: the one predict path of batch, stream and server.

        Parameters
        ----------
        frame
            Raw transactions (the dataset spec's scoring columns, more are ignored).
        context
            Earlier transactions (already scored; validated again here, ids canonicalized like
            ``frame``'s) that count as history before ``frame``'s rows but are not scored
            again: the stream's recent rows that are not yet folded into the featurizer's
            history.
        with_features
            Also return the model's input features of each row (after the scores).

        Returns
        -------
        pandas.DataFrame
            ``transaction_id``, ``score`` and ``decision`` per row, on ``frame``'s index.

        Raises
        ------
        InvalidInput
            When the rows break the input rules of :func:`read_transactions`.
        """
        ids, scores, decisions, features = self._score(frame, context)
        columns: dict[str, Any] = {s.TRANSACTION_ID: ids, s.SCORE: scores, s.DECISION: decisions}
        if with_features:
            columns.update(zip(self.feature_names, features.T, strict=True))
        return pd.DataFrame(columns, index=frame.index, copy=False)

    def score_records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """:meth:`score_frame` as a list of JSON-ready records (what the model server sends).

        The server turns a DataFrame answer into these same records with ``to_dict``, which
        for one row costs more than scoring it; building them directly skips the frame.
        """
        ids, scores, decisions, _ = self._answer(read_transactions(frame, self.dataset_spec))
        return _records(ids, scores, decisions)

    def _answer(self, tx: Transactions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ids, scores, decisions, features: through the live state if one is open."""
        live = getattr(self, "_live", None)
        if live is not None:
            ids, scores, decisions, features = live.score_transactions(tx)
            return ids, scores, decisions, features
        features = self.featurizer.features_of(tx.raw)
        scores = self.final_scores(
            positive_scores(self.estimator, features, self.feature_names), tx
        )
        return tx.ids, scores, (scores >= self.threshold).astype(np.int8), features

    def reasons(
        self, features: np.ndarray, decisions: np.ndarray, method: str = "treeshap"
    ) -> dict[str, np.ndarray]:
        """Reason codes of each alert (:mod:`inferloop.evaluation.reasons`), as columns."""
        return reason_columns(self.estimator, features, self.feature_names, decisions, method)

    def read_request(self, frame: pd.DataFrame) -> Transactions:
        """Validate a request: the input rules and the data contract that batch scoring applies.

        A row that batch scoring would quarantine raises :class:`InvalidInput` naming the same
        reason code(s) (``non_positive_amount``, ``timestamp_out_of_range``, ...). The full
        contract costs milliseconds, so it runs only when a cheap check of the parsed values
        finds something it would reject.
        """
        return read_request(frame, self.contract)

    @property
    def contract(self) -> ContractParams:
        """The data contract's limits the model was trained under (defaults if not recorded)."""
        recorded = getattr(self, "contract_", None) or ContractParams()
        # the spec the featurizer was fitted with decides which columns a request needs
        return replace(recorded, dataset=self.dataset_spec)

    def _score(
        self, frame: pd.DataFrame, context: pd.DataFrame | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tx = read_transactions(frame, self.dataset_spec)
        if context is None or context.empty:
            features = self.featurizer.features_of(tx.raw)
        else:  # featurize context + rows together (both canonical); score only the rows
            both = concat_raw(read_transactions(context, self.dataset_spec).raw, tx.raw)
            features = self.featurizer.features_of(both)[len(context) :]
        scores = self.final_scores(
            positive_scores(self.estimator, features, self.feature_names), tx
        )
        return tx.ids, scores, (scores >= self.threshold).astype(np.int8), features

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame | list[dict[str, Any]]:
        """MLflow entry point: score a request, with bad input as a 400 error.

        ``model_input`` is whatever MLflow parsed from the request: a DataFrame for
        ``dataframe_split`` / ``dataframe_records`` / CSV / Parquet, records or a dict of
        columns otherwise. Rows are checked by :meth:`read_request` (the batch contract's
        reason codes), then scored through the live feature state when one is open
        (:meth:`open_live_state`). Inside ``mlflow models serve`` (which sets
        ``_MLFLOW_IS_IN_SERVING_ENVIRONMENT``) the answer is JSON-ready records: the same
        response, without building a frame only for the server to take apart.
        """
        try:
            method = _explain_method(params)
            frame = as_frame(model_input)
            _check_request_rows(len(frame))
            ids, scores, decisions, features = self._answer(self.read_request(frame))
        except InvalidInput as exc:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        reasons = self.reasons(features, decisions, method) if _explain(params) else None
        if os.environ.get(SERVING_ENV, "").lower() == "true":
            return _records(ids, scores, decisions, reasons)
        columns = {s.TRANSACTION_ID: ids, s.SCORE: scores, s.DECISION: decisions, **(reasons or {})}
        return pd.DataFrame(columns, index=frame.index, copy=False)


def _explain(params: dict[str, Any] | None) -> bool:
    """Whether a request's MLflow ``params`` ask for reason codes (``{"explain": true}``)."""
    value = (params or {}).get(EXPLAIN_PARAM, False)
    return value is True or str(value).lower() == "true"


def _explain_method(params: dict[str, Any] | None) -> str:
    """The ``explain_method`` a request asks for (``treeshap`` unless it says ``path``)."""
    method = str((params or {}).get(EXPLAIN_METHOD_PARAM) or METHODS[0])
    if method not in METHODS:
        raise InvalidInput(
            f"params.{EXPLAIN_METHOD_PARAM} must be one of {list(METHODS)}, got {method!r}"
        )
    return method


def _records(
    ids: np.ndarray,
    scores: np.ndarray,
    decisions: np.ndarray,
    reasons: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    records = [
        {s.TRANSACTION_ID: i, s.SCORE: p, s.DECISION: d}
        for i, p, d in zip(ids.tolist(), scores.tolist(), decisions.tolist(), strict=True)
    ]
    if reasons:  # JSON has no NaN: a row without reasons carries nulls
        for name, column in reasons.items():
            values = [None if v is None or v != v else v for v in column.tolist()]
            for record, value in zip(records, values, strict=True):
                record[name] = value
    return records


# --------------------------------------------------------------------------- the live scorer


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Whole seconds since 1970 of naive-UTC datetimes (the featurizer's time unit)."""
    return np.asarray(values.to_numpy(dtype="datetime64[s]").astype(np.int64))


def history_end(featurizer: Any) -> int:
    """Epoch second of the newest event in a fitted featurizer's history (-1 if empty)."""
    times = featurizer.history_.time
    return int(times.max()) if len(times) else -1


class LiveScorer:
    """The one live scorer: score raw rows against a live history, then add them to it.

    Batch files, the stream, the production simulation, evaluation and ``mlflow models serve``
    all score through this class, so "read the state, featurize, score, write the event" and
    the rule for late rows live in one place. Two kinds of history:

    * a feature-state store (``state``): each call reads the events of its rows' entities,
      featurizes and scores the rows not scored before, and writes their events back, in one
      store transaction (:meth:`FeatureState.transact
      <inferloop.state.base.FeatureState.transact>`). A transaction id already in the store
      gets its stored score and is not counted again. Labels come only from the label feed.
    * no store: the model's own featurizer history, advanced in place after each call (pass
      a copy of the model to keep the original). Rows at or before the newest event already
      in the history are "late": they are scored first (the featurizer then uses the history
      strictly before the earliest of them) and added before the on-time rows are scored.

    Parameters
    ----------
    model : FraudModel
        The unwrapped model.
    state : FeatureState, optional
        The store; None scores against the model's in-memory history.
    label : str
        Model name and version kept with each written event.
    prune_every : int
        Events written between two prunes of the store (events older than the longest window
        plus the label delay are dropped).
    """

    def __init__(
        self,
        model: Any,
        state: FeatureState | None = None,
        *,
        label: str = "",
        prune_every: int = 200_000,
    ) -> None:
        self.model = model
        self.state = state
        self.label = label or os.environ.get(MODEL_LABEL_ENV, "") or str(model.candidate)
        self.prune_every = prune_every
        # rows at or before the newest event in the history (ties included: handled exactly)
        self.late_rows = 0
        # of those, rows strictly before it: out of time order, so rows already scored did
        # not see them
        self.older_rows = 0
        self.retried_rows = 0  # rows whose transaction id the store had already scored
        # the model label of each row of the last stateful call (stored labels for retries)
        self.last_models = np.empty(0, dtype=object)
        self._written = 0
        self._newest = -1

    def score(
        self, valid: pd.DataFrame, *, with_features: bool = False, with_reasons: bool = False
    ) -> pd.DataFrame:
        """``transaction_id``, ``score``, ``decision`` for ``valid`` (same order and index).

        With ``with_features`` the model's input features of each row come too (monitoring
        profiles them; NaN for rows the store had already scored). With ``with_reasons``, the
        reason-code columns (:data:`inferloop.evaluation.reasons.REASON_COLUMNS`), filled
        for alerts the model can explain.
        """
        scored = self._score_rows(valid, with_features or with_reasons)
        if not with_reasons:
            return scored
        names = self.model.feature_names
        if set(names) <= set(scored.columns):
            features = scored[names].to_numpy(dtype=np.float64)
        else:  # no rows (or none featurized): empty reasons
            features = np.full((len(scored), len(names)), np.nan)
        decisions = scored[s.DECISION].to_numpy()
        out = scored.assign(**self.model.reasons(features, decisions))
        return out if with_features else out.drop(columns=names, errors="ignore")

    def _score_rows(self, valid: pd.DataFrame, with_features: bool) -> pd.DataFrame:
        """:meth:`score` without reasons."""
        if valid.empty:
            return _empty_scores()
        if self.state is not None:
            ids, scores, decisions, features = self.score_transactions(
                read_transactions(valid, self.model.dataset_spec)
            )
            columns: dict[str, Any] = {
                s.TRANSACTION_ID: ids,
                s.SCORE: scores,
                s.DECISION: decisions,
            }
            if with_features:
                columns.update(zip(self.model.feature_names, features.T, strict=True))
            return pd.DataFrame(columns, index=valid.index, copy=False)
        late = self.late_mask(valid)
        n_late = int(late.sum())
        if n_late in (0, len(valid)):
            return self._score_and_advance(valid, with_features)
        parts = [
            self._score_and_advance(valid[late], with_features),
            self._score_and_advance(valid[~late], with_features),
        ]
        return pd.concat(parts).loc[valid.index]

    def score_transactions(
        self, tx: Transactions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ids, scores, decisions and features of validated rows, through the store.

        One store transaction: ids already scored keep their stored scores (features NaN);
        the others -- the first row of each new id -- are featurized against the store's
        events of their customers and terminals and written back.
        """
        assert self.state is not None, "score_transactions needs a feature state"
        if self.model.postprocess is not None:  # a missing attribute fails before the store
            self.model.decision_groups(tx)
        ids = text_keys(tx.ids)
        first = first_of_each(ids)
        featurizer = self.model.featurizer
        request = StateRequest(
            ids=ids[first],
            queries=featurizer.state_queries(tx.raw),
            label_cutoff=int(tx.raw.seconds.max()),
            horizon=featurizer.state_horizon_s,
        )
        computed: dict[str, Any] = {}

        def compute(snapshot: Snapshot) -> ScoredEvents:
            new = first[[i not in snapshot.scored for i in ids[first].tolist()]]
            computed["new"] = new
            # every row a new id (the usual case): ``new`` is every position, in order
            raw = tx.raw if len(new) == len(tx.raw) else take_raw(tx.raw, new)
            features = featurizer.features_from_state(raw, snapshot.events)
            computed["features"] = features
            scores = positive_scores(self.model.estimator, features, self.model.feature_names)
            scores = self.model.final_scores(scores, tx, new)
            return ScoredEvents(
                ids=ids[new],
                time=raw.seconds,
                amount=raw.amount,
                keys=entity_keys_of(raw, self.model.dataset_spec),
                score=scores,
                decision=(scores >= self.model.threshold).astype(np.int8),
                model=self.label,
            )

        snapshot, written = self.state.transact(request, compute)
        self._after_write(tx, written, snapshot)
        scores, decisions, features = self._assemble(ids, snapshot, written, computed)
        return tx.ids, scores, decisions, features

    def _assemble(
        self, ids: np.ndarray, snapshot: Snapshot, written: ScoredEvents, computed: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores per row: new ids from this write, the rest as the store had them.

        Also records, in :attr:`last_models`, the model that made each row's score (the
        stored one for ids scored before).
        """
        if len(written) == len(ids):  # every row a new id (the usual case): in row order
            self.last_models = np.empty(len(ids), dtype=object)
            self.last_models.fill(self.label)
            scores, decisions = written.score, written.decision
            return scores.astype(np.float64), decisions.astype(np.int8), computed["features"]
        features = np.full((len(ids), len(self.model.feature_names)), np.nan)
        features[computed["new"]] = computed["features"]
        results = dict(snapshot.scored)
        results.update(
            (i, (p, int(d), self.label))
            for i, p, d in zip(
                written.ids.tolist(), written.score.tolist(), written.decision.tolist(), strict=True
            )
        )
        stored = [results[i] for i in ids.tolist()]
        scores = np.fromiter((r[0] for r in stored), dtype=np.float64, count=len(ids))
        decisions = np.fromiter((r[1] for r in stored), dtype=np.int8, count=len(ids))
        self.last_models = np.asarray([r[2] for r in stored], dtype=object)
        return scores, decisions, features

    def _after_write(self, tx: Transactions, written: ScoredEvents, snapshot: Snapshot) -> None:
        """Counters, and a prune of the store every ``prune_every`` written events."""
        self.retried_rows += len(tx.ids) - len(written)
        entity = _first_velocity_entity(self.model.featurizer)
        stored = snapshot.events.get(entity) if entity else None
        if entity is not None and stored is not None and len(written):
            # new events dated before their key's newest stored one: out of time order
            self.older_rows += _older_than_stored(written.keys[entity], written.time, stored.last)
        if len(written):
            self._newest = max(self._newest, int(written.time.max()))
        self._written += len(written)
        if self.state is not None and self._written >= self.prune_every:
            self._written = 0
            self.state.prune(self._newest - self.model.featurizer.state_horizon_s)

    def late_mask(self, rows: pd.DataFrame) -> np.ndarray:
        """Which of ``rows`` are at or before the newest event in the history (counted)."""
        seconds, end = epoch_seconds(rows[s.TIMESTAMP]), history_end(self.model.featurizer)
        late = seconds <= end
        self.late_rows += int(late.sum())
        self.older_rows += int((seconds < end).sum())
        return late

    def close(self) -> None:
        """Finish pending work (nothing to do here: every call writes before it returns)."""

    def _score_and_advance(self, rows: pd.DataFrame, with_features: bool) -> pd.DataFrame:
        scored = self.model.score_frame(rows, with_features=with_features)
        self.model.featurizer.update(rows)
        return scored


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.TRANSACTION_ID: pd.Series([], dtype="int64"),
            s.SCORE: pd.Series([], dtype="float64"),
            s.DECISION: pd.Series([], dtype="int8"),
        }
    )


def _check_request_rows(n_rows: int) -> None:
    limit = os.environ.get(MAX_ROWS_ENV)
    if limit and n_rows > int(limit):
        raise InvalidInput(
            f"too many rows in one request: {n_rows:,} > {int(limit):,} "
            f"({MAX_ROWS_ENV}); split the batch or use batch scoring"
        )


def _older_than_stored(keys: np.ndarray, times: np.ndarray, newest: dict[str, int]) -> int:
    """How many events are dated before their key's newest stored event."""
    if len(keys) == 1:  # one request's event: no frame
        return int(int(times[0]) < newest.get(str(keys[0]), -1))
    stored = pd.Series(keys, copy=False).map(newest).fillna(-1).to_numpy(dtype=np.float64)
    return int((np.asarray(times, dtype=np.float64) < stored).sum())


def _first_velocity_entity(featurizer: TransactionFeaturizer) -> str | None:
    """The first entity with velocity windows (its stored ``last`` times show time order)."""
    return next((e.name for e in featurizer.dataset_spec.entities if e.is_velocity), None)
