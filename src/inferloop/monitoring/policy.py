"""The policy: from the history of verdicts to one action (none, alert, retrain).

A family must breach in ``window`` consecutive batches before the policy acts, so noise in one
batch does not retrain; the history is read back from earlier ``summary.json`` files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inferloop.core.storage import read_json
from inferloop.monitoring.checks import check_family
from inferloop.monitoring.params import (
    FAMILIES,
    STATUS_OF_ACTION,
    SUMMARY_FILE,
    ActionKind,
    MonitorParams,
    Status,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "Action",
    "Policy",
    "breached_checks",
    "decide_action",
    "fairness_breached",
    "fairness_cleared",
    "fairness_retrains",
    "is_of_version",
    "load_history",
]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Action:
    """What the policy asks for after the latest window.

    Attributes
    ----------
    kind : {"none", "alert", "retrain", "needs_review"}
    reasons : tuple of str
        One human-readable line per breached check family.
    families : tuple of str
        Families that triggered ``retrain`` (or were breached, for ``alert``).
    """

    kind: ActionKind
    reasons: tuple[str, ...] = ()
    families: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        """``ok``, ``alert`` or ``retrain``."""
        return STATUS_OF_ACTION[self.kind]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "reasons": list(self.reasons), "families": list(self.families)}


def _family_state(summary: Mapping[str, Any], family: str) -> bool | None:
    """True/False if ``family`` breached/passed in this window; None if not evaluated."""
    checks = [
        c
        for name, c in summary.get("checks", {}).items()
        if check_family(name) == family and c.get("evaluated", True)
    ]
    if not checks:
        return None
    return any(bool(c.get("breached")) for c in checks)


def breached_checks(summary: Mapping[str, Any]) -> list[str]:
    """Names of the breached checks of one summary."""
    return [name for name, c in summary.get("checks", {}).items() if c.get("breached")]


@dataclass(frozen=True)
class Policy:
    """Turns a history of batch summaries into an :class:`Action`.

    * ``retrain`` when one check family (data drift, score drift, performance, fairness) has
      breached in each of the last ``consecutive_windows`` windows where it was evaluated.
      Windows where the family could not be evaluated (labels not arrived yet) are skipped,
      neither extending nor breaking the run. Drift and fairness estimates are noisy proxies
      of harm, so they must persist.
    * ``retrain`` at once on a performance breach when ``performance_at_once``: performance
      is measured on ground truth that already lags by the label delay; waiting more windows
      would leave a degraded model catching less fraud for weeks.
    * ``retrain`` at once on an estimate breach (the check exists only when the
      ``retrain_on_estimate`` switch is on): acting before the labels is its whole point.
    * ``needs_review`` instead of ``retrain`` while fairness is breached and
      ``max_fairness_retrains`` retrains (whatever triggered them) have already failed to
      clear that breach: a bias that the data cannot fix is not fixed by retraining on more
      of it, so the loop stops retraining and asks a person (the alert repeats until
      fairness clears).
    * ``alert`` when the latest window breached something that does not (yet) persist.
    * ``none`` otherwise, including whenever the latest window breached nothing.
    """

    consecutive_windows: int = 3
    performance_at_once: bool = True
    max_fairness_retrains: int = 2

    @classmethod
    def from_params(cls, params: MonitorParams) -> Policy:
        """The policy configured by the ``monitor`` params."""
        return cls(
            params.consecutive_windows,
            params.retrain_on_performance_at_once,
            params.max_fairness_retrains,
        )

    def trailing_breaches(self, history: Sequence[Mapping[str, Any]], family: str) -> int:
        """Consecutive evaluated windows, newest first, in which ``family`` breached."""
        run = 0
        for summary in reversed(history):
            state = _family_state(summary, family)
            if state is None:
                continue
            if not state:
                break
            run += 1
        return run

    def _judge(self, history: Sequence[Mapping[str, Any]], family: str) -> tuple[bool, str]:
        """Whether breached ``family`` asks for retraining, and the reason in words."""
        names = ", ".join(n for n in breached_checks(history[-1]) if check_family(n) == family)
        if (family == "performance" and self.performance_at_once) or family == "estimate":
            return True, f"{family}: {names} breached (retrain at once)"
        run = self.trailing_breaches(history, family)
        if run >= self.consecutive_windows:
            return True, f"{family}: breached in {run} consecutive windows ({names})"
        return False, f"{family}: {names} breached ({run}/{self.consecutive_windows} windows)"

    def decide(self, history: Sequence[Mapping[str, Any]], failed_retrains: int = 0) -> Action:
        """The action after the last summary of ``history`` (oldest first).

        ``failed_retrains`` counts the retrains that have not cleared the current fairness
        breach (:func:`fairness_retrains`).
        """
        breached = [f for f in FAMILIES if history and _family_state(history[-1], f)]
        if not breached:
            return Action("none")
        verdicts = {family: self._judge(history, family) for family in breached}
        reasons = tuple(reason for _, reason in verdicts.values())
        retrain = tuple(family for family, (yes, _) in verdicts.items() if yes)
        if retrain and "fairness" in breached and failed_retrains >= self.max_fairness_retrains:
            why = (
                f"fairness: {failed_retrains} retrain(s) did not clear the breach; "
                "retraining stopped, needs review"
            )
            return Action("needs_review", (*reasons, why), ("fairness",))
        if retrain:
            return Action("retrain", reasons, retrain)
        return Action("alert", reasons, tuple(breached))


def fairness_retrains(previous: Mapping[str, Any] | None, latest: Mapping[str, Any]) -> int:
    """Retrains since the current fairness breach began that did not clear it.

    Carried from summary to summary across model versions (``escalation.fairness_retrains``):
    once fairness has breached, each retrain adds one, until a window CLEARS fairness (every
    evaluated fairness check under its maximum with its interval's upper end): then the count
    starts over at 0. A window that merely fails to show the breach beyond its noise does not
    clear it, or one noisy window would restart the retraining it was meant to stop.
    """
    if previous is None or fairness_cleared(latest):
        return 0
    count = int((previous.get("escalation") or {}).get("fairness_retrains", 0))
    action = previous.get("action") or {}
    in_breach = count > 0 or bool(_family_state(previous, "fairness"))
    if action.get("kind") == "retrain" and in_breach:
        count += 1
    return count


def fairness_cleared(summary: Mapping[str, Any]) -> bool:
    """Whether every evaluated fairness check is under its maximum, upper bound included."""
    checks = [
        c
        for name, c in summary.get("checks", {}).items()
        if check_family(name) == "fairness" and c.get("evaluated", True)
    ]
    upper = [c.get("high") if c.get("high") is not None else c.get("value") for c in checks]
    return bool(checks) and all(
        u is not None and u <= c["threshold"] for u, c in zip(upper, checks, strict=True)
    )


def fairness_breached(summary: Mapping[str, Any]) -> bool:
    """Whether a fairness check breached in this window."""
    return bool(_family_state(summary, "fairness"))


def decide_action(
    history: Sequence[Mapping[str, Any]],
    params: MonitorParams,
    previous: Mapping[str, Any] | None = None,
) -> Action:
    """:meth:`Policy.decide` with the policy configured by ``params``.

    Parameters
    ----------
    history : sequence of dict
        Batch summaries (``summary.json`` contents), oldest first, the latest window last.
    params : MonitorParams
    previous : dict, optional
        The summary before the latest one, of any model version (the escalation count
        survives a new champion). Default: the one before it in ``history``.

    Returns
    -------
    Action
    """
    if previous is None and len(history) >= 2:
        previous = history[-2]
    failed = fairness_retrains(previous, history[-1]) if history else 0
    return Policy.from_params(params).decide(history, failed)


def load_history(out_dir: str | Path, model_version: str | None = None) -> list[dict[str, Any]]:
    """Summaries written under ``out_dir/*/summary.json``, oldest first (by ``as_of``).

    Parameters
    ----------
    out_dir : str or Path
        The monitoring output folder.
    model_version : str, optional
        Keep only summaries of this model version (a retrained model starts a new history).

    Returns
    -------
    list of dict
    """
    summaries = []
    for path in sorted(Path(out_dir).glob(f"*/{SUMMARY_FILE}")):
        try:
            summary = read_json(path)
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("skipping unreadable monitoring summary %s: %s", path, exc)
            continue
        if model_version is None or is_of_version(summary, model_version):
            summaries.append(summary)
    return sorted(summaries, key=lambda x: (str(x.get("as_of")), str(x.get("batch"))))


def is_of_version(summary: Mapping[str, Any], model_version: str) -> bool:
    """Whether a monitoring summary is of ``model_version``."""
    return str((summary.get("model") or {}).get("version")) == str(model_version)


# --------------------------------------------------------------------------------------------
# data selection
# --------------------------------------------------------------------------------------------
