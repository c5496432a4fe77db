"""The dataset spec: declared column roles drive the contract, the featurizer and the reads."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from inferloop.core import schema as s
from inferloop.core.config import ParamsError
from inferloop.core.dataset import (
    BUILTIN_ENTITIES,
    CARD_FRAUD,
    DatasetSpec,
    dataset_spec,
    load_dataset_spec,
)
from inferloop.core.presets import apply_preset, preset_path
from inferloop.data.contract import ContractParams, required_columns, validate_transactions
from inferloop.data.events import RawColumns
from inferloop.data.features import FeatureParams, TransactionFeaturizer, featurize_frame
from inferloop.data.ingest import DataSourceParams, load_source
from inferloop.data.rows import InvalidInput, _read_columns, _read_plain, read_transactions
from inferloop.evaluation.fairness import fairness_report
from inferloop.evaluation.gates import GateParams, decide
from inferloop.evaluation.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[2]
PARAMS = FeatureParams(customer_windows=("1h", "1D"), terminal_windows=("1D",), label_delay="1D")
#: a PaySim-like spec: one categorical feature whose categories are learned, two numeric ones
WALLET = DatasetSpec(
    name="wallet",
    categorical_features={"kind": ()},
    numeric_features=("balance", "balance_after"),
    sensitive_attributes={},
)


def _assert_one_by_one_equals(
    batch: pd.DataFrame, featurizer: TransactionFeaturizer, incoming: pd.DataFrame
) -> None:
    """One row at a time against the growing history gives the batch's features, to 1e-9."""
    online = []
    for i in range(len(incoming)):
        row = incoming.iloc[[i]]
        online.append(featurizer.transform(row))
        featurizer.update(row)
    np.testing.assert_allclose(pd.concat(online).to_numpy(), batch.to_numpy(), rtol=1e-9, atol=1e-9)


def _wallet_rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-01")
    seconds = np.sort(rng.integers(0, 6 * 86400, n))
    balance = rng.gamma(2.0, 300.0, n).round(2)
    amount = rng.gamma(2.0, 40.0, n).round(2) + 0.01
    return pd.DataFrame(
        {
            s.TRANSACTION_ID: np.arange(n),
            s.TIMESTAMP: start + pd.to_timedelta(seconds, unit="s"),
            s.CUSTOMER_ID: rng.integers(0, 30, n),
            s.TERMINAL_ID: rng.integers(0, 20, n),
            s.AMOUNT: amount,
            "kind": rng.choice(["PAYMENT", "TRANSFER", "CASH_OUT"], n, p=[0.6, 0.3, 0.1]),
            "balance": balance,
            "balance_after": balance - amount,
            s.TARGET: (rng.random(n) < 0.05).astype(int),
        }
    )


def test_the_default_spec_is_the_simulators_and_params_declare_it() -> None:
    assert load_dataset_spec(ROOT / "params.yaml") == CARD_FRAUD
    assert CARD_FRAUD.scoring_columns == s.SCORING_COLUMNS
    assert CARD_FRAUD.sensitive_columns == s.SENSITIVE_COLUMNS
    assert required_columns(True) == (*s.SCORING_COLUMNS, s.TARGET, *s.SENSITIVE_COLUMNS)


def test_the_card_fraud_preset_leaves_params_yaml_byte_for_byte(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    assert apply_preset(params, preset_path("card_fraud", ROOT)) == ["data", "dataset"]
    assert params.read_text() == (ROOT / "params.yaml").read_text()


def test_every_preset_is_a_valid_spec_and_keeps_the_other_sections(tmp_path: Path) -> None:
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for preset in sorted((ROOT / "configs").glob("*.yaml")):
        params = tmp_path / f"{preset.stem}.yaml"
        params.write_text((ROOT / "params.yaml").read_text())
        written = apply_preset(params, preset)
        after = yaml.safe_load(params.read_text())
        assert after["dataset"]["name"] == preset.stem
        load_dataset_spec(params)  # valid
        untouched = [k for k in base if k not in written]
        assert {k: after[k] for k in untouched} == {k: base[k] for k in untouched}


def test_an_unknown_preset_names_the_ones_there() -> None:
    with pytest.raises(ParamsError, match=r"presets: .*handbook"):
        preset_path("no-such-layout", ROOT)


def test_a_bad_spec_names_every_problem_in_one_message() -> None:
    with pytest.raises(ParamsError) as info:
        dataset_spec(
            {
                "categorical_features": {"amount": [], "kind": "a", "band": ["x", "x"]},
                "numeric_features": ["balance", "balance"],
                "sensitive_attributes": ["balance"],
                "unseen_category": "drop",
                "colour": 1,
            }
        )
    message = str(info.value)
    for problem in (
        "unknown keys ['colour']",
        "core column 'amount'",
        "categorical_features.kind must be a list",
        "categorical_features.band lists a value more than once",
        "numeric_features names ['balance'] more than once",
        "'balance' is in both numeric_features and sensitive_attributes",
        "unseen_category must be one of ['quarantine', 'other']",
    ):
        assert problem in message


def test_the_contract_requires_only_the_declared_columns_and_checks_their_values() -> None:
    rows = _wallet_rows(30).astype({"balance": object})
    rows.loc[3, "balance"] = "lots"
    rows.loc[4, "balance_after"] = np.inf
    rows.loc[5, "kind"] = "  "
    result = validate_transactions(rows, ContractParams(dataset=WALLET))
    assert result.summary["rows_in"] == 30 and result.summary["rows_valid"] == 27
    assert result.summary["by_reason"] == {
        "invalid_numeric:balance": 1,
        "invalid_numeric:balance_after": 1,
        "unknown_category:kind": 1,
    }
    assert result.valid["balance"].dtype == np.float64
    # the card-fraud contract on the same rows names its own missing columns
    with pytest.raises(ValueError, match="channel"):
        validate_transactions(rows, ContractParams())


def test_a_declared_list_quarantines_or_buckets_unseen_values_as_the_policy_says() -> None:
    rows = _wallet_rows(20).assign(kind="PAYMENT")
    rows.loc[2, "kind"] = "BARTER"
    strict = DatasetSpec(categorical_features={"kind": ("PAYMENT",)}, sensitive_attributes={})
    quarantined = validate_transactions(rows, ContractParams(dataset=strict))
    assert quarantined.summary["by_reason"] == {"unknown_category:kind": 1}
    lenient = DatasetSpec(
        categorical_features={"kind": ("PAYMENT",)},
        sensitive_attributes={},
        unseen_category="other",
    )
    assert validate_transactions(rows, ContractParams(dataset=lenient)).summary["rows_valid"] == 20
    history = rows.iloc[:10]
    featurizer = TransactionFeaturizer.from_params(PARAMS, lenient).fit(history)
    features = featurizer.transform(rows.iloc[[2, 3]])
    assert features["kind_PAYMENT"].tolist() == [0.0, 1.0]  # the `other` bucket: no indicator
    with pytest.raises(InvalidInput, match=r"unknown value.*BARTER"):
        read_transactions(rows.iloc[[2]], strict)


def test_learned_categories_and_numeric_features_are_point_in_time_features() -> None:
    rows = _wallet_rows()
    history, incoming = rows.iloc[:300], rows.iloc[300:]
    features, featurizer = featurize_frame(history, PARAMS, WALLET)
    # learned from the data, most frequent first; numeric features as they are
    assert featurizer.categories == {"kind": ("PAYMENT", "TRANSFER", "CASH_OUT")}
    names = list(featurizer.feature_names_out_)
    assert names[-5:] == [
        "kind_PAYMENT",
        "kind_TRANSFER",
        "kind_CASH_OUT",
        "balance",
        "balance_after",
    ]
    assert not any(n.startswith(("channel_", "category_")) for n in names)
    np.testing.assert_array_equal(features["balance"], history["balance"])
    batch = featurizer.transform(incoming)
    _assert_one_by_one_equals(batch, featurizer, incoming)


def test_the_plain_request_path_reads_a_custom_spec_as_the_general_path_does() -> None:
    rows = _wallet_rows(5)
    request = pd.DataFrame(
        [
            {
                **{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()},
                s.TIMESTAMP: row[s.TIMESTAMP].isoformat(),
            }
            for row in rows.drop(columns=[s.TARGET]).to_dict("records")
        ]
    )
    plain, general = _read_plain(request, WALLET), _read_columns(request, WALLET)
    assert plain is not None
    for column in ("kind",):
        np.testing.assert_array_equal(plain.raw.categories[column], general.raw.categories[column])
    for column in WALLET.numeric_features:
        np.testing.assert_array_equal(plain.raw.numeric[column], general.raw.numeric[column])
    with pytest.raises(InvalidInput, match=r"missing required column.*balance"):
        read_transactions(request.drop(columns=["balance"]), WALLET)
    with pytest.raises(InvalidInput, match="'balance_after'"):
        read_transactions(request.assign(balance_after="n/a"), WALLET)


def test_numeric_time_and_generated_ids_come_from_the_data_section(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    pd.DataFrame(
        {"step": [1, 1, 2, "x"], "amount": [5.0, 6.0, 7.0, 8.0], "who": [1, 2, 1, 2]}
    ).to_csv(path, index=False)
    params = DataSourceParams(
        source="file",
        path=str(path),
        column_map={"step": s.TIMESTAMP, "who": s.CUSTOMER_ID},
        timestamp_unit="h",
        timestamp_origin="2026-01-01",
    )
    df = load_source(params)
    assert df[s.TRANSACTION_ID].tolist() == [0, 1, 2, 3]  # the row's place in the file
    assert df[s.TIMESTAMP].iloc[:3].tolist() == [
        pd.Timestamp("2026-01-01 01:00"),
        pd.Timestamp("2026-01-01 01:00"),
        pd.Timestamp("2026-01-01 02:00"),
    ]
    assert pd.isna(df[s.TIMESTAMP].iloc[3])  # kept, and quarantined by the contract later


def test_no_sensitive_attribute_means_no_fairness_gate_and_a_card_that_says_so() -> None:
    y = np.array([0] * 90 + [1] * 10)
    scores = np.linspace(0, 1, 100)
    frame = pd.DataFrame({s.TARGET: y, s.SCORE: scores, s.DECISION: (scores > 0.5).astype(int)})
    report = fairness_report(
        frame, y_col=s.TARGET, pred_col=s.DECISION, score_col=s.SCORE, attributes=[]
    )
    metrics = compute_metrics(y, scores, 0.5, np.arange(100), np.zeros(100, "datetime64[s]"))
    decision = decide("lightgbm", metrics, report, GateParams())
    assert report == {} and not [g for g in decision.gates if ":" in g.name]


def _handbook_csv(path: Path) -> Path:
    rows = _wallet_rows(60)
    pd.DataFrame(
        {
            "TRANSACTION_ID": rows[s.TRANSACTION_ID],
            "TX_DATETIME": rows[s.TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": rows[s.CUSTOMER_ID],
            "TERMINAL_ID": rows[s.TERMINAL_ID],
            "TX_AMOUNT": rows[s.AMOUNT],
            "TX_TIME_SECONDS": 0,
            "TX_FRAUD": rows[s.TARGET],
            "TX_FRAUD_SCENARIO": 0,
        }
    ).to_csv(path, index=False)
    return path


def _handbook_map() -> dict[str, str]:
    """The handbook preset's column map (the layout :func:`_handbook_csv` writes)."""
    preset = yaml.safe_load(preset_path("handbook", ROOT).read_text())
    return dict(preset["data"]["column_map"])


def test_inspect_proposes_the_handbook_columns_roles(tmp_path: Path) -> None:
    from inferloop.data.inspect import propose_roles

    proposal = propose_roles(_handbook_csv(tmp_path / "log.csv"))
    assert proposal.column_map == _handbook_map()  # what the preset declares
    roles = {c.name: c.role for c in proposal.columns}
    assert roles["TX_FRAUD_SCENARIO"] == "ignore" and roles["TX_TIME_SECONDS"] == "ignore"
    sections = proposal.as_params()
    spec = dataset_spec(sections["dataset"])
    assert spec.categorical_features == {} and spec.numeric_features == ()
    assert not proposal.notes


def test_inspect_check_names_every_problem_of_a_file_under_the_params(tmp_path: Path) -> None:
    from inferloop.data.inspect import check_table

    path = _handbook_csv(tmp_path / "log.csv")
    table = pd.read_csv(path)
    table["TX_FRAUD"] = table["TX_FRAUD"].map({0: "no", 1: "yes"})
    table["kind"] = "a"
    table.to_csv(path, index=False)
    source = DataSourceParams(
        source="file",
        path=str(path),
        column_map=_handbook_map(),
    )
    spec = DatasetSpec(
        categorical_features={"kind": ()},
        numeric_features=("TX_DATETIME_TEXT",),
        sensitive_attributes={"age": ()},
    )
    problems = check_table(path, source, spec)
    assert len(problems) == 3, problems
    assert "'TX_DATETIME_TEXT' (declared as a numeric feature) is not in the file" in problems[0]
    assert "'age' (declared as a sensitive attribute) is not in the file" in problems[1]
    assert "'is_fraud' (the label) must hold 0 and 1 only" in problems[2]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    (problem,) = check_table(empty, source, spec)
    assert problem.startswith("input file is empty") and str(empty) in problem
    assert (
        check_table(
            _handbook_csv(tmp_path / "ok.csv"),
            source,
            DatasetSpec(categorical_features={}, sensitive_attributes={}),
        )
        == []
    )


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "inferloop")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_cli_names_bad_specs_and_bad_files_without_a_traceback(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["dataset"] = {
        "categorical_features": {"amount": [], "kind": "a"},
        "numeric_features": ["balance", "balance"],
        "sensitive_attributes": ["balance"],
        "unseen_category": "drop",
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    log = _handbook_csv(tmp_path / "log.csv")
    bad_spec = _cli("data", "inspect", str(log), "--check", cwd=tmp_path)
    assert bad_spec.returncode != 0 and "Traceback" not in bad_spec.stderr
    for problem in (
        "core column 'amount'",
        "categorical_features.kind must be a list",
        "numeric_features names ['balance'] more than once",
        "'balance' is in both numeric_features and sensitive_attributes",
        "unseen_category must be one of",
    ):
        assert problem in bad_spec.stderr, bad_spec.stderr
    # a good spec, a file that does not fit it: one line per problem, exit 1
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    assert _cli("init", "--preset", "handbook", cwd=tmp_path).returncode != 0  # no configs/ here
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    assert _cli("init", "--preset", "handbook", cwd=tmp_path).returncode == 0
    table = pd.read_csv(log).drop(columns=["TX_AMOUNT"])
    table.to_csv(log, index=False)
    bad_file = _cli("data", "inspect", str(log), "--check", cwd=tmp_path)
    assert bad_file.returncode == 1 and "Traceback" not in bad_file.stderr
    assert "column_map names columns missing from the data: ['TX_AMOUNT']" in bad_file.stderr
    proposal = _cli("data", "inspect", str(log), cwd=tmp_path)
    assert proposal.returncode == 0 and "no column looks like the amount role" in proposal.stdout
    assert yaml.safe_load(proposal.stdout)["data"]["column_map"]["TX_FRAUD"] == s.TARGET


def test_the_card_fraud_features_keep_their_names_and_order() -> None:
    rows = _wallet_rows(50).assign(channel="online", merchant_category="travel")
    featurizer = TransactionFeaturizer.from_params(PARAMS).fit(rows)
    names = list(featurizer.feature_names_out_)
    expected = [f"channel_{c}" for c in s.CHANNELS] + [
        f"category_{c}" for c in s.MERCHANT_CATEGORIES
    ]
    assert names[-len(expected) :] == expected  # the models of earlier runs read these
    assert featurizer.transform(rows.head(1))["category_travel"].tolist() == [1.0]


def test_declared_entities_decide_the_key_columns_and_the_window_features(tmp_path: Path) -> None:
    """No customer keys: no customer windows, no customer column required, nothing made up."""
    rows = _wallet_rows()
    for entities, kept, gone in (
        ((), (), ("cust_", "term_", "amount_to_cust")),
        (("terminal",), ("term_",), ("cust_", "amount_to_cust")),
        (("customer",), ("cust_", "amount_to_cust"), ("term_",)),
    ):
        spec = DatasetSpec(
            entities=tuple(BUILTIN_ENTITIES[e] for e in entities), numeric_features=("balance",),
            categorical_features={}, sensitive_attributes={},
        )  # fmt: skip
        keys = [c for c in (s.CUSTOMER_ID, s.TERMINAL_ID) if c not in spec.entity_columns]
        data = rows.drop(columns=["kind", "balance_after", *keys])
        assert required_columns(False, spec) == spec.scoring_columns
        assert not set(keys) & set(spec.scoring_columns)
        result = validate_transactions(data, ContractParams(dataset=spec))
        assert result.summary["rows_valid"] == len(data)
        history, incoming = result.valid.iloc[:300], result.valid.iloc[300:]
        _, featurizer = featurize_frame(history, PARAMS, spec)
        names = list(featurizer.feature_names_out_)
        assert all(any(n.startswith(k) for n in names) for k in kept)
        assert not any(n.startswith(gone) for n in names)
        assert {q.entity for q in featurizer.state_queries(_raw(incoming, spec))} == set(entities)
        assert set(featurizer.history_events()[0]) == set(entities)
        # one row at a time against the growing history equals the batch, to 1e-9
        batch = featurizer.transform(incoming)
        _assert_one_by_one_equals(batch, featurizer, incoming)
        request = data.drop(columns=[s.TARGET]).head(2)
        assert len(read_transactions(request, spec).raw) == 2


def test_an_unknown_entity_name_names_the_built_in_ones_and_the_mapping_form() -> None:
    with pytest.raises(ParamsError, match=r"entities \['device'\].*\['customer', 'terminal'\]"):
        dataset_spec({"entities": ["customer", "device"]})
    assert dataset_spec({"entities": []}).entities == ()
    absent = dataset_spec({}).entity_names
    assert absent == ("customer", "terminal")  # absent: both, as before


def test_named_entities_have_their_own_windows_keys_and_contract_checks() -> None:
    """Two accounts (origin: velocity, destination: risk) and a device (velocity), keyed by the
    file's own columns: features named after each, one-by-one == batch, nulls quarantined."""
    section = {
        "entities": {
            "origin": {"column": "origin_account", "features": "velocity"},
            "destination": {"column": "dest_account", "features": "risk", "prefix": "dest"},
            "device": {"column": "device", "features": "velocity"},
        },
        "categorical_features": {"kind": []},
        "numeric_features": ["balance"],
    }
    spec = dataset_spec(section)
    assert spec.entity_names == ("origin", "destination", "device")
    assert dataset_spec(spec.as_params()) == spec  # the params form reads back the same
    rows = _wallet_rows().assign(
        origin_account=lambda f: "C" + f[s.CUSTOMER_ID].astype(str),
        dest_account=lambda f: f[s.TERMINAL_ID],
        device=lambda f: "dev" + (f[s.CUSTOMER_ID] % 7).astype(str),
    )
    data = rows.drop(columns=[s.CUSTOMER_ID, s.TERMINAL_ID, "balance_after"])
    assert {"origin_account", "dest_account", "device"} <= set(spec.scoring_columns)
    broken = data.copy()
    broken.loc[3, "device"] = None
    result = validate_transactions(broken, ContractParams(dataset=spec))
    assert result.summary["by_reason"] == {"null_key:device": 1}
    history, incoming = result.valid.iloc[:300], result.valid.iloc[300:]
    _, featurizer = featurize_frame(history, PARAMS, spec)
    names = list(featurizer.feature_names_out_)
    for prefix in ("origin_count_1h", "amount_to_origin_mean", "dest_risk_1D", "device_count_1D"):
        assert prefix in names, names
    assert not any(n.startswith(("cust_", "term_")) for n in names)
    assert {q.entity for q in featurizer.state_queries(_raw(incoming, spec))} == set(
        spec.entity_names
    )
    keys, _ = featurizer.history_events()
    assert keys["device"][:3].tolist() == history["device"].head(3).tolist()
    batch = featurizer.transform(incoming)
    _assert_one_by_one_equals(batch, featurizer, incoming)
    # the device windows count the other customers sharing a device: not the origin's counts
    assert (batch["device_count_1D"] >= batch["origin_count_1D"]).all()
    assert (batch["device_count_1D"] > batch["origin_count_1D"]).any()


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"device": {"column": "device_id"}}, r"entities.device.features must be one of"),
        ({"device": {"features": "velocity"}}, r"entities.device.column must name the key"),
        ({"d": {"column": "amount", "features": "risk"}}, r"core column 'amount'"),
        ({"d": {"column": "x", "features": "risk", "window": "1h"}}, r"unknown keys \['window'\]"),
        (
            {
                "a": {"column": "x", "features": "risk"},
                "b": {"column": "x", "features": "velocity"},
            },
            r"share the column \['x'\]",
        ),
        ({"a": {"column": "x", "features": "risk", "prefix": "1a"}}, r"prefix must be a name"),
        ({"a": "device_id"}, r"entities.a must be a mapping"),
    ],
)
def test_a_badly_declared_entity_is_named_with_what_is_wrong(entities: Any, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        dataset_spec({"entities": entities})


def test_an_entity_column_cannot_also_be_a_feature() -> None:
    with pytest.raises(ParamsError, match=r"column 'kind' is in both categorical_features"):
        dataset_spec(
            {
                "categorical_features": {"kind": []},
                "entities": {"k": {"column": "kind", "features": "velocity"}},
            }
        )


def _raw(frame: pd.DataFrame, spec: DatasetSpec) -> RawColumns:
    return RawColumns.from_frame(frame, spec=spec)


def test_a_text_label_becomes_0_and_1_by_its_declared_positive_value(tmp_path: Path) -> None:
    from inferloop.data.inspect import check_table

    rows = _wallet_rows(12).drop(columns=[s.TARGET])
    rows["risk"] = [
        "bad",
        "good",
        " bad ",
        "",
        "good",
        "bad",
        None,
        "good",
        "good",
        "bad",
        "x",
        "good",
    ]
    path = tmp_path / "credit.csv"
    rows.to_csv(path, index=False)
    source = DataSourceParams(source="file", path=str(path), column_map={"risk": s.TARGET})
    problems = check_table(path, source, WALLET)
    assert any("data.target_positive" in p for p in problems), problems
    source = dataclasses.replace(source, target_positive="bad")
    assert check_table(path, source, WALLET) == []
    labels = load_source(source, spec=WALLET)[s.TARGET]
    assert labels.tolist()[:6] == [1, 0, 1, pd.NA, 0, 1] and labels.isna().sum() == 2
    result = validate_transactions(load_source(source, spec=WALLET), ContractParams(dataset=WALLET))
    assert result.summary["rows_valid"] + result.summary["rows_quarantined"] == 12


#: a credit table: no time, no entities, a numeric sensitive attribute in bands
CREDIT = DatasetSpec(
    name="credit",
    timed=False,
    entities=(),
    categorical_features={"purpose": ()},
    numeric_features=("duration",),
    sensitive_attributes={"sex": ("female", "male"), "age": ("<25", "25-40", "40+")},
    sensitive_bins={"age": (25.0, 40.0)},
)


def _credit_rows(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            s.TRANSACTION_ID: np.arange(n),
            s.AMOUNT: rng.gamma(2.0, 900.0, n).round(0) + 1,
            "purpose": rng.choice(["car", "education"], n),
            "duration": rng.choice([12, 24, 36], n).astype(float),
            "sex": rng.choice(["female", "male"], n),
            "age": rng.integers(19, 70, n),
            s.TARGET: (rng.random(n) < 0.3).astype(int),
        }
    )


def test_a_table_without_time_needs_no_timestamp_and_groups_age_in_bands() -> None:
    spec = dataset_spec(
        {
            "timed": False,
            "entities": [],
            "sensitive_attributes": {"sex": ["female", "male"], "age": {"bins": [25, 40]}},
        }
    )
    assert spec.sensitive_attributes["age"] == ("<25", "25-40", "40+")
    assert s.TIMESTAMP not in spec.scoring_columns
    assert spec.as_params()["sensitive_attributes"]["age"] == {"bins": [25.0, 40.0]}
    with pytest.raises(ParamsError, match="need time"):
        dataset_spec({"timed": False})  # the default entities need windows in time
    with pytest.raises(ParamsError, match=r"age must be a list of groups or \{bins"):
        dataset_spec(
            {"timed": False, "entities": [], "sensitive_attributes": {"age": {"bins": [40, 25]}}}
        )
    rows = _credit_rows().astype({"age": object})
    rows.loc[3, "age"] = "unknown"
    result = validate_transactions(rows, ContractParams(dataset=CREDIT), require_target=True)
    assert result.summary["by_reason"] == {"unknown_category:age": 1}
    assert set(result.valid["age"]) <= {"<25", "25-40", "40+"}
    assert result.quarantine["age"].tolist() == ["unknown"]  # kept as it came
    _, featurizer = featurize_frame(result.valid, PARAMS, CREDIT)
    names = list(featurizer.feature_names_out_)
    assert names[:2] == ["tx_amount", "log_amount"] and "hour" not in names
    assert not {"age", "sex"} & set(names)  # sensitive: never features
    request = rows.drop(columns=[s.TARGET, "sex", "age"]).head(2)  # no timestamp to send
    tx = read_transactions(request, CREDIT)
    assert len(tx.raw) == 2 and tx.timestamps.dtype.kind == "M"
    assert featurizer.features_of(tx.raw).shape == (2, len(names))


def test_inspect_proposes_a_table_without_time_and_checks_it(tmp_path: Path) -> None:
    from inferloop.data.inspect import check_table, propose_roles

    path = tmp_path / "credit.csv"
    _credit_rows().drop(columns=[s.TRANSACTION_ID]).rename(columns={s.TARGET: "risk"}).to_csv(
        path, index=False
    )
    proposal = propose_roles(path)
    section = proposal.as_params()["dataset"]
    assert section["timed"] is False and section["entities"] == []
    assert any("table without time" in note for note in proposal.notes)
    source = DataSourceParams(source="file", path=str(path), column_map={"risk": s.TARGET})
    assert check_table(path, source, CREDIT) == []


def test_rows_in_the_files_own_names_score_as_the_contracts(tmp_path: Path) -> None:
    """A PaySim-like layout (hourly ``step``, ``isFraud``): the server's request check, the
    batch contract and a batch file's column check accept the file's names, and read the same
    values as from the contract's names."""
    from inferloop.data.contract import load_contract
    from inferloop.data.ingest import InputLayout, to_contract_names
    from inferloop.data.rows import read_request
    from inferloop.scoring.inputs import ScoringInputError, check_inputs

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(
        column_map={"step": s.TIMESTAMP, "isFraud": s.TARGET, "kind": "kind"},
        timestamp_unit="h",
        timestamp_origin="2026-03-01",
    )
    params["dataset"] = WALLET.as_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    contract = dataclasses.replace(load_contract(tmp_path / "params.yaml"), require_target=False)
    assert contract.layout.column_map["step"] == s.TIMESTAMP
    rows = _wallet_rows(20)
    rows[s.TIMESTAMP] = rows[s.TIMESTAMP].dt.floor("h")
    hours = (rows[s.TIMESTAMP] - pd.Timestamp("2026-03-01")) // pd.Timedelta(hours=1)
    own = rows.drop(columns=[s.TIMESTAMP]).rename(columns={s.TARGET: "isFraud"})
    own.insert(1, "step", hours.astype(int))
    # the server's path (one request), the contract's, and rows already in the contract's names
    for a, b in ((own.head(1), rows.head(1)), (own, rows)):
        got, want = read_request(a, contract), read_request(b, contract)
        np.testing.assert_array_equal(got.raw.seconds, want.raw.seconds)
        np.testing.assert_array_equal(got.raw.amount, want.raw.amount)
        np.testing.assert_array_equal(got.ids, want.ids)
    assert to_contract_names(rows, contract.layout) is rows  # nothing to map: untouched
    checked = validate_transactions(
        own.assign(amount=lambda f: f.amount.where(f.index != 4, -1)), contract
    )
    assert checked.summary["rows_valid"] == 19
    assert checked.quarantine["step"].tolist() == [own["step"].iloc[4]]  # kept as it came
    # a scoring file: the file's names pass the column check; a missing id is explained
    path = tmp_path / "own.csv"
    own.to_csv(path, index=False)
    check_inputs([path], WALLET.scoring_columns, contract.layout)
    own.drop(columns=[s.TRANSACTION_ID]).to_csv(path, index=False)
    with pytest.raises(ScoringInputError, match=r"rows scored later need ids of their own"):
        check_inputs([path], WALLET.scoring_columns, contract.layout)
    with pytest.raises(
        ScoringInputError,
        match=r"lacks required column\(s\) \['col'\].*file's names, \{'col': \['c'\]\}",
    ):
        check_inputs(
            [path],
            (s.TIMESTAMP, "col"),
            InputLayout({"step": s.TIMESTAMP, "c": "col"}),
        )


def test_a_log_without_amounts_has_no_amount_features_rules_or_required_column() -> None:
    """``has_amount: false``: the contract requires and checks no amount, the featurizer has
    no amount features and its velocity windows count events; server rows need none."""
    spec = dataset_spec(
        {
            "has_amount": False,
            "entities": ["customer", "terminal"],
            "categorical_features": {"kind": []},
            "numeric_features": ["balance"],
        }
    )
    assert s.AMOUNT not in spec.scoring_columns
    assert dataset_spec(spec.as_params()) == spec
    data = _wallet_rows().drop(columns=[s.AMOUNT, "balance_after"])
    broken = data.copy()
    broken.loc[2, s.CUSTOMER_ID] = None
    result = validate_transactions(broken, ContractParams(dataset=spec))
    assert result.summary["by_reason"] == {f"null_key:{s.CUSTOMER_ID}": 1}
    assert s.AMOUNT not in result.valid.columns
    history, incoming = result.valid.iloc[:300], result.valid.iloc[300:]
    _, featurizer = featurize_frame(history, PARAMS, spec)
    names = list(featurizer.feature_names_out_)
    assert not any("amount" in n for n in names), names
    assert {"cust_count_1h", "cust_log_seconds_since_last", "term_risk_1D", "balance"} <= set(names)
    batch = featurizer.transform(incoming)
    _assert_one_by_one_equals(batch, featurizer, incoming)
    from inferloop.data.rows import read_request

    request = data.drop(columns=[s.TARGET]).head(1)
    request = request.assign(**{s.TIMESTAMP: request[s.TIMESTAMP].astype(str)})
    assert len(read_request(request, ContractParams(dataset=spec)).ids) == 1
    with pytest.raises(ParamsError, match=r"has_amount must be true or false"):
        dataset_spec({"has_amount": "no"})
