"""The QueueScaler's status: conditions that keep their transition time, and the smallest
merge patch that takes the last written status to the new one."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Mapping
from typing import Any

CONDITION_TYPES = ("Ready", "Active", "ScalingLimited", "Error")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def is_true(conditions: list[dict[str, Any]], kind: str, reason: str | None = None) -> bool:
    found = condition(conditions, kind)
    return bool(
        found
        and found.get("status") == "True"
        and (reason is None or found.get("reason") == reason)
    )


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    true: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """A new list with `kind` set; lastTransitionTime moves only when the status flips."""
    status = "True" if true else "False"
    previous = condition(conditions, kind)
    changed_at = now
    if previous is not None and previous.get("status") == status:
        changed_at = previous.get("lastTransitionTime") or now
    entry = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": changed_at,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    others = [c for c in conditions if c.get("type") != kind]
    ordered = sorted(
        [*others, entry],
        key=lambda c: CONDITION_TYPES.index(c["type"]) if c["type"] in CONDITION_TYPES else 99,
    )
    return ordered


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys of `new` that differ from `old` (lists and objects are replaced whole)."""
    return {key: copy.deepcopy(value) for key, value in new.items() if old.get(key) != value}
