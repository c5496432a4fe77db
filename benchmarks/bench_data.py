"""Throughput of the data half: simulator, data contract and featurization at 100k and 1M rows.

Run: ``python benchmarks/bench_data.py`` (or ``make bench``). Writes ``results/data.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path

from inferloop.data.contract import ContractParams, validate_transactions
from inferloop.data.features import FeatureParams, featurize_frame
from inferloop.data.simulate import SimulateParams, simulate_transactions

RESULTS = Path(__file__).parent / "results"
# (customers, terminals, days) giving about 100k and 1M transactions
SIZES = {"100k": (1_600, 1_100, 30), "1M": (8_000, 5_300, 60)}


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_size(label: str, customers: int, terminals: int, days: int) -> dict[str, float]:
    """Time each data stage's compute function once on one size."""
    params = replace(SimulateParams(), n_customers=customers, n_terminals=terminals, n_days=days)
    raw, t_sim = _timed(simulate_transactions, params)
    result, t_contract = _timed(validate_transactions, raw, ContractParams())
    _, t_feat = _timed(featurize_frame, result.valid, FeatureParams())
    n = len(raw)
    row = {
        "rows": n,
        "simulate_seconds": t_sim,
        "simulate_rows_per_s": n / t_sim,
        "contract_seconds": t_contract,
        "contract_rows_per_s": n / t_contract,
        "featurize_seconds": t_feat,
        "featurize_rows_per_s": n / t_feat,
    }
    print(
        f"{label:>5}: {n:>9,} rows | simulate {n / t_sim:>10,.0f}/s | contract {n / t_contract:>10,.0f}/s | featurize {n / t_feat:>10,.0f}/s"
    )
    return row


def main() -> None:
    """Run every size and write the JSON results."""
    results = {label: bench_size(label, *size) for label, size in SIZES.items()}
    out = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "targets": {"simulate_rows_per_s": 50_000, "featurize_rows_per_s": 50_000},
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS / 'data.json'}")


if __name__ == "__main__":
    main()
