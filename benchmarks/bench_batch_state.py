"""Batch scoring through the SQLite feature state against raw ``Booster.predict``.

The batch part of ``bench_scoring.py`` alone (in-memory history, SQLite state and the edge
model, each paired with a raw ``Booster.predict`` of the same rows), on 200,000 incoming rows
and 3 pairs: a few minutes instead of the whole scoring benchmark. Also timed: the feature
state's prune within the SQLite runs, and TreeSHAP (the compiled kernel, and LightGBM's own
``pred_contrib`` beside it) on as many rows as alerted, the reason codes' share. Writes ``results/scoring-batch.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_scoring import RESULTS, TARGETS, Settings, bench_batch, prepared_world
from bench_serving import machine

SETTINGS = replace(Settings(), incoming_rows=200_000, repeats=3)


def main() -> int:
    """Build the world, measure the three batch paths in pairs, write the JSON."""
    before = machine()
    with tempfile.TemporaryDirectory(prefix="bench-batch-state-") as tmp:
        _, matrix, booster, data = prepared_world(SETTINGS, Path(tmp))
        batch = bench_batch(SETTINGS, booster, matrix, data, Path(tmp))
    summary = {
        name: round(batch[name]["vs_raw_predict_median"], 3)
        for name in ("batch_in_process", "batch_in_process_sqlite_state", "batch_in_process_edge")
    }
    out = {
        "machine": {**before, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": asdict(SETTINGS),
        "target_vs_raw_predict": TARGETS["batch_vs_raw_predict"],
        "vs_raw_predict_median": summary,
        # why 0.5x is out of reach with reason codes: the trees plus TreeSHAP on the alerts
        "predict_plus_treeshap_vs_raw_predict": round(
            batch["reason_codes"]["predict_plus_treeshap_vs_raw_predict"], 3
        ),
        "results": batch,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scoring-batch.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
