"""Batch scoring on Apache Spark through ``mlflow.pyfunc.spark_udf``.

The same inputs, contract, output layout and model as :func:`inferloop.scoring.batch.score_files`,
with Spark doing the work (``local[N]`` here, a cluster in production; see ``docs/spark.md``):

1. read the CSV (all columns as text) or Parquet files;
2. apply the data contract per Arrow batch with ``mapInPandas`` (the pandas
   :func:`~inferloop.data.contract.validate_transactions`), then flag transaction ids repeated
   across batches with a window (``duplicate_transaction_id``);
3. cast valid rows to the contract's canonical types (naive-UTC ``timestamp_ntz``, ``double``
   amounts, ``bigint`` ids when every valid id is an integer) or, for a model logged with a
   typed signature, to the signature's types; a row with a value that does not cast is
   quarantined as ``type_mismatch:<column>`` with its raw values, never dropped;
4. co-locate each customer's rows (repartition by customer, sort by time) so that each Arrow
   batch the UDF sees holds whole customer histories, then score with
   ``spark_udf(..., result_type="score double, decision int", env_manager="local")``: the
   pyfunc returns a DataFrame and the struct result type picks its columns by name;
5. write predictions and quarantine with ``mode("overwrite")`` (one Spark job commits or
   nothing is visible; a rerun replaces the partition) and a ``_manifest.json`` with counts.

Point-in-time features: the UDF calls the model's ``predict`` once per Arrow batch with the
model's history as of training; rows of other batches are not history for each other (the
local engine advances the history chunk after chunk). See ``docs/spark.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from inferloop.core import schema as s
from inferloop.core.storage import write_json
from inferloop.data.contract import ContractParams, validate_transactions
from inferloop.scoring.batch import ScoreRun
from inferloop.scoring.inputs import MANIFEST_NAME, ScoringInputError, check_inputs, list_inputs
from inferloop.scoring.loading import partition_name, resolve_model

__all__ = [
    "RESULT_TYPE",
    "ROW",
    "canonical_types",
    "cast_columns",
    "flag_type_mismatches",
    "predictions",
    "read_inputs",
    "row_reasons",
    "score_with_spark",
    "signature_types",
    "spark_session",
    "with_reasons",
]


ROW = "_inferloop_row"
RESULT_TYPE = "score double, decision int"
_INT64_TEXT = r"^-?(0|[1-9][0-9]{0,18})$"
_SPARK_TYPES = {
    "long": "bigint",
    "integer": "int",
    "double": "double",
    "float": "float",
    "string": "string",
    "boolean": "boolean",
    "datetime": "timestamp_ntz",
}


def spark_session(master: str = "local[2]", app_name: str = "inferloop-score") -> Any:
    """A Spark session for scoring (the active one if a session already runs, e.g. on a cluster).

    Sets the session time zone to UTC, so that timestamps cross Spark <-> pandas as naive UTC
    (the contract's convention), and points Python workers at this interpreter unless
    ``PYSPARK_PYTHON`` says otherwise. Local masters get few shuffle partitions and no UI.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    if master.startswith("local"):
        builder = builder.config("spark.sql.shuffle.partitions", "8").config(
            "spark.ui.enabled", "false"
        )
    return builder.getOrCreate()


def read_inputs(spark: Any, files: list[Path]) -> Any:
    """The input files as one Spark DataFrame (CSV columns as text, Parquet typed)."""
    kinds = {p.suffix.lower() == ".csv" for p in files}
    if len(kinds) > 1:
        raise ScoringInputError("the Spark engine reads CSV or Parquet in one run, not both")
    paths = [str(p) for p in files]
    if kinds == {True}:
        return spark.read.option("header", True).option("inferSchema", False).csv(paths)
    return spark.read.parquet(*paths)


def row_reasons(
    frame: pd.DataFrame, contract: ContractParams, timestamp_format: str | None = None
) -> pd.Series:
    """The contract's reject reason of each row of ``frame`` (``None`` for valid rows).

    ``frame`` must carry a unique ``ROW`` column (extra columns pass the contract unchanged).
    """
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if frame.empty:
        return reasons
    result = validate_transactions(
        frame, contract, require_target=False, timestamp_format=timestamp_format
    )
    rejected = dict(zip(result.quarantine[ROW], result.quarantine[s.REJECT_REASON], strict=True))
    return frame[ROW].map(rejected).astype(object).where(frame[ROW].isin(rejected.keys()), None)


def with_reasons(df: Any, contract: ContractParams, timestamp_format: str | None = None) -> Any:
    """``df`` plus a ``reject_reason`` column (null = valid) from the contract and a global
    duplicate-id check."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    applied = replace(contract, require_target=False)
    numbered = df.withColumn(ROW, F.monotonically_increasing_id())
    out_schema = StructType([*numbered.schema.fields, StructField(s.REJECT_REASON, StringType())])

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            yield frame.assign(**{s.REJECT_REASON: row_reasons(frame, applied, timestamp_format)})

    checked = numbered.mapInPandas(check, out_schema)
    reason = F.col(s.REJECT_REASON)
    first = Window.partitionBy(s.TRANSACTION_ID, reason.isNull()).orderBy(ROW)
    repeated = reason.isNull() & (F.row_number().over(first) > 1)
    return checked.withColumn(
        s.REJECT_REASON,
        F.when(repeated, F.lit("duplicate_transaction_id")).otherwise(reason),
    )


def canonical_types(checked: Any) -> dict[str, str]:
    """The contract's types of valid rows: naive-UTC timestamps, double amounts, and ``bigint``
    for text id columns whose every valid value is an integer (as the pandas contract does)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    core = {s.TIMESTAMP: "timestamp_ntz", s.AMOUNT: "double"}
    types = {c: t for c, t in core.items() if c in checked.columns}  # a log without amounts
    text_ids = [c for c in s.ID_COLUMNS if isinstance(checked.schema[c].dataType, StringType)]
    if text_ids:
        valid = checked.filter(F.col(s.REJECT_REASON).isNull())
        whole = [F.min(F.col(c).rlike(_INT64_TEXT).cast("int")).alias(c) for c in text_ids]
        row = valid.agg(*whole).first()
        types.update({c: "bigint" for c in text_ids if row is not None and row[c] == 1})
    return types


def signature_types(model_uri: str) -> dict[str, str]:
    """Spark type of each input column of the model signature (empty without a signature)."""
    from mlflow.models import get_model_info

    signature = get_model_info(model_uri).signature
    if signature is None or signature.inputs is None:  # the model validates its own input
        return {}
    types = {}
    for spec in signature.inputs.inputs:
        name = getattr(spec.type, "name", str(spec.type))
        if spec.name and name in _SPARK_TYPES:
            types[spec.name] = _SPARK_TYPES[name]
    return types


def _cast(column: str, spark_type: str) -> Any:
    """``column`` cast to ``spark_type`` (null when impossible); timestamps go through UTC."""
    from pyspark.sql import functions as F

    if spark_type == "timestamp_ntz":  # through the session zone (UTC), honouring offsets
        return F.col(column).try_cast("timestamp").cast("timestamp_ntz")
    return F.col(column).try_cast(spark_type)


def flag_type_mismatches(df: Any, types: dict[str, str]) -> Any:
    """Quarantine valid rows with a value that does not cast to the type of its column."""
    from pyspark.sql import functions as F

    for column, spark_type in types.items():
        reason = F.col(s.REJECT_REASON)
        failed = reason.isNull() & F.col(column).isNotNull() & _cast(column, spark_type).isNull()
        df = df.withColumn(
            s.REJECT_REASON, F.when(failed, F.lit(f"type_mismatch:{column}")).otherwise(reason)
        )
    return df


def cast_columns(valid: Any, types: dict[str, str]) -> Any:
    """Valid rows with the given column types (other columns unchanged)."""
    return valid.select(*(_cast(c, types[c]).alias(c) if c in types else c for c in valid.columns))


def _input_columns(columns: list[str]) -> set[str]:
    """The columns sent to the model: the core scoring columns and the dataset's own ones
    (everything but the contract's outputs and labels; the model ignores what it does not
    read)."""
    dropped = {s.REJECT_REASON, s.TARGET, s.LABEL_AVAILABLE_AT, s.FRAUD_SCENARIO, ROW}
    return {c for c in columns if c not in dropped}


def predictions(valid: Any, spark: Any, model_uri: str, name: str, version: str) -> Any:
    """Score valid rows with ``spark_udf``; each customer's rows share a partition, time-sorted."""
    import mlflow
    from pyspark.sql import functions as F

    predict = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type=RESULT_TYPE, env_manager="local"
    )
    # without customer keys, rows share no state that a partition must keep together
    key = s.CUSTOMER_ID if s.CUSTOMER_ID in valid.columns else s.TRANSACTION_ID
    ordered = valid.repartition(key).sortWithinPartitions(key, s.TIMESTAMP)
    inputs = [c for c in valid.columns if c in _input_columns(valid.columns)]
    scored = ordered.withColumn("_p", predict(F.struct(*inputs)))
    return scored.select(
        F.col(s.TRANSACTION_ID),
        F.col(s.TIMESTAMP),
        F.col("_p.score").alias(s.SCORE),
        F.col("_p.decision").cast("tinyint").alias(s.DECISION),
        F.lit(name).alias(s.MODEL_NAME),
        F.lit(version).alias(s.MODEL_VERSION),
        F.current_timestamp().alias(s.SCORED_AT),
    )


def score_with_spark(
    inputs: str | Path,
    output_dir: str | Path,
    *,
    model_uri: str,
    contract: ContractParams,
    quarantine_dir: str | Path | None = None,
    timestamp_format: str | None = None,
    master: str = "local[2]",
    spark: Any = None,
) -> ScoreRun:
    """Score ``inputs`` with ``model_uri`` on Spark into the layout of the local engine.

    Parameters
    ----------
    inputs, output_dir, model_uri, contract, quarantine_dir, timestamp_format
        As in :func:`inferloop.scoring.batch.score_files`.
    master : str
        Spark master when no session is active (``local[2]``, ``yarn``, ``k8s://...``).
    spark : pyspark.sql.SparkSession, optional
        A session to use instead of creating one.

    Returns
    -------
    ScoreRun
        Totals of the run (the partition is replaced as a whole).
    """
    files = list_inputs(inputs)
    check_inputs(files, contract.dataset.scoring_columns, contract.layout)
    name, version, pinned = resolve_model(model_uri)
    label = partition_name(name, version)
    run_dir = Path(output_dir) / label
    qroot = Path(quarantine_dir) if quarantine_dir is not None else Path(output_dir) / "_quarantine"
    spark = spark or spark_session(master)
    persisted = with_reasons(read_inputs(spark, files), contract, timestamp_format).persist()
    try:
        types = {**canonical_types(persisted), **signature_types(pinned)}
        checked = flag_type_mismatches(persisted, types)
        by_reason = _reason_counts(checked)
        reason = checked[s.REJECT_REASON]
        rejected = checked.filter(reason.isNotNull()).drop(ROW)
        rejected.write.mode("overwrite").parquet(str(qroot / label))
        valid = cast_columns(checked.filter(reason.isNull()).drop(ROW, s.REJECT_REASON), types)
        scored = predictions(valid, spark, pinned, name, version)
        scored.write.mode("overwrite").parquet(str(run_dir))
    finally:
        persisted.unpersist()
    written = spark.read.parquet(str(run_dir)).count()
    return _spark_run(run_dir, name, version, pinned, contract, by_reason, written)


def _reason_counts(checked: Any) -> dict[str | None, int]:
    rows = checked.groupBy(s.REJECT_REASON).count().collect()
    return {row[s.REJECT_REASON]: int(row["count"]) for row in rows}


def _spark_run(
    run_dir: Path,
    name: str,
    version: str,
    uri: str,
    contract: ContractParams,
    by_reason: dict[str | None, int],
    scored: int,
) -> ScoreRun:
    """Write the manifest of a Spark run and describe it like a local run."""
    rejected = {k: v for k, v in sorted(by_reason.items(), key=lambda kv: str(kv[0])) if k}
    totals: dict[str, Any] = {
        "rows_in": sum(by_reason.values()),
        "rows_scored": scored,
        "rows_quarantined": sum(rejected.values()),
        "late_rows": 0,
        "by_reason": rejected,
        "chunks": 0,
        "files": 0,
    }
    if totals["rows_in"] != scored + totals["rows_quarantined"]:
        raise AssertionError(f"Spark run lost rows: {totals}")
    manifest = {
        "engine": "spark",
        "model": {"name": name, "version": version, "uri": uri},
        "contract": asdict(replace(contract, require_target=False)),
        "complete": True,
        "totals": totals,
        "updated_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    write_json(manifest, run_dir / MANIFEST_NAME)
    this_run = {k: totals[k] for k in ("rows_in", "rows_scored", "rows_quarantined")}
    this_run.update(chunks=0, skipped_chunks=0)
    return ScoreRun(
        run_dir, run_dir / MANIFEST_NAME, name, version, totals, this_run, True, engine="spark"
    )
