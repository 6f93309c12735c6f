"""The scaling decision as a pure function: backlog, current replicas, policy and memory in;
the replica count, a reason and the updated memory out. No I/O, no clock: `now` is an argument.

Where the HorizontalPodAutoscaler would act (at least one replica, minimum at least one) the
answer is the HPA's for an External metric with an AverageValue target, the way KEDA's SQS
scaler and AWS's "backlog per instance" policy drive it:

1. usage = B / (T * R); inside [1 - tolerance, 1 + tolerance] the recommendation is R,
   otherwise ceil(B / T);
2. stabilisation: scale up at once; scale down only to the highest recommendation made within
   the stabilisation window (the window is seeded with R when a target is first seen, so a
   restart never scales down early);
3. clamp to [min, max].

With a minimum of zero, the HPA's "at least one" becomes a rule of its own: the recommendation
is zero only while the backlog is at or below the activation value and has been for the
cooldown, and the window then applies to that zero like to any other scale-down. From zero, a
backlog above the activation value scales straight to ceil(B / T).
"""

from __future__ import annotations

import dataclasses
import math

TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Policy:
    target_per_replica: int
    min_replicas: int
    max_replicas: int
    activation_backlog: int = 0
    stabilization_seconds: float = 300.0
    cooldown_seconds: float = 300.0
    tolerance: float = TOLERANCE

    def __post_init__(self) -> None:
        if self.target_per_replica < 1:
            raise ValueError("the target backlog per replica must be at least 1")
        if self.min_replicas < 0:
            raise ValueError("the minimum replica count cannot be negative")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("the maximum replica count must be at least the minimum and 1")
        if self.activation_backlog < 0:
            raise ValueError("the activation backlog cannot be negative")
        if self.stabilization_seconds < 0 or self.cooldown_seconds < 0:
            raise ValueError("the stabilisation window and the cooldown cannot be negative")


@dataclasses.dataclass(frozen=True)
class Recommendation:
    at: float
    replicas: int


@dataclasses.dataclass(frozen=True)
class Memory:
    """What the decision remembers between calls: the recent unstabilised recommendations and
    the last time the backlog was above the activation value."""

    recommendations: tuple[Recommendation, ...]
    last_active: float

    @classmethod
    def start(cls, now: float, current: int) -> Memory:
        # As the HPA does: a target seen for the first time (or after a restart) counts as
        # recommended at its current size, so nothing shrinks before a full window has passed.
        return cls((Recommendation(now, current),), now)


@dataclasses.dataclass(frozen=True)
class Decision:
    desired: int
    current: int
    recommendation: int  # unstabilised, before the clamp to [min, max]
    active: bool  # backlog above the activation value
    reason: str  # CamelCase, for conditions and Events
    message: str
    limited: str | None  # "AtMaximum" / "AtMinimum" when the clamp changed the answer
    memory: Memory


def within_tolerance(backlog: int, target: int, current: int, tolerance: float) -> bool:
    # Same float arithmetic and comparisons as the HPA's replica calculator.
    usage = float(backlog) / (float(target) * float(current))
    return not (usage < 1.0 - tolerance or usage > 1.0 + tolerance)


def recommend(policy: Policy, backlog: int, current: int, active: bool, cooled: bool) -> int:
    """The unstabilised recommendation (before the window and the clamp)."""
    needed = math.ceil(backlog / policy.target_per_replica)
    zero_allowed = policy.min_replicas == 0
    if current == 0:
        return needed if (active or not zero_allowed) else 0
    if within_tolerance(backlog, policy.target_per_replica, current, policy.tolerance):
        raw = current
    else:
        raw = needed
    if zero_allowed:
        return 0 if (not active and cooled) else max(raw, 1)
    return raw


def decide(
    policy: Policy, backlog: int, current: int, now: float, memory: Memory | None = None
) -> Decision:
    if backlog < 0 or current < 0:
        raise ValueError("the backlog and the replica count cannot be negative")
    memory = memory if memory is not None else Memory.start(now, current)
    active = backlog > policy.activation_backlog
    last_active = now if active else memory.last_active
    cooled = now - last_active >= policy.cooldown_seconds

    raw = recommend(policy, backlog, current, active, cooled)

    cutoff = now - policy.stabilization_seconds
    window = [r for r in memory.recommendations if r.at > cutoff]
    highest = max([raw, *(r.replicas for r in window)])
    stabilized = current
    if stabilized < raw:  # scale up at once
        stabilized = raw
    if stabilized > highest:  # scale down no lower than the window's highest recommendation
        stabilized = highest

    desired = min(max(stabilized, policy.min_replicas), policy.max_replicas)
    limited = None
    if stabilized > policy.max_replicas:
        limited = "AtMaximum"
    elif stabilized < policy.min_replicas:
        limited = "AtMinimum"

    reason, message = _explain(policy, backlog, current, raw, stabilized, desired, active, limited)
    kept = (*window, Recommendation(now, raw))
    return Decision(
        desired=desired,
        current=current,
        recommendation=raw,
        active=active,
        reason=reason,
        message=message,
        limited=limited,
        memory=Memory(kept, last_active),
    )


def _explain(
    policy: Policy,
    backlog: int,
    current: int,
    raw: int,
    stabilized: int,
    desired: int,
    active: bool,
    limited: str | None,
) -> tuple[str, str]:
    load = f"backlog {backlog}, target {policy.target_per_replica} per replica"
    if desired > current:
        if current == 0:
            return "Activated", f"{load}: above the activation value {policy.activation_backlog}"
        return "ScaledUp", f"{load}: {current} -> {desired}"
    if desired < current:
        if desired == 0:
            return (
                "ScaledToZero",
                f"{load}: at or below the activation value {policy.activation_backlog} "
                f"for the {policy.cooldown_seconds:g} s cooldown",
            )
        return "ScaledDown", f"{load}: {current} -> {desired}"
    if raw < current and stabilized > raw:
        return (
            "Stabilizing",
            f"{load}: {raw} would do, holding {current} for the "
            f"{policy.stabilization_seconds:g} s scale-down window",
        )
    if limited == "AtMaximum":
        return limited, f"{load}: {raw} wanted, held at the maximum {policy.max_replicas}"
    if limited == "AtMinimum":
        return limited, f"{load}: {raw} wanted, held at the minimum {policy.min_replicas}"
    if current == 0 and not active:
        return "Idle", f"{load}: at or below the activation value {policy.activation_backlog}"
    if current > 0 and within_tolerance(
        backlog, policy.target_per_replica, current, policy.tolerance
    ):
        return "WithinTolerance", f"{load}: within {policy.tolerance:.0%} of {current} replicas"
    return "Steady", f"{load}: {desired} replicas"
