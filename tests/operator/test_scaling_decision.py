"""The scaling decision: examples, the HPA's answers where the HPA would act, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from risingstars.operator.decision import Memory, Policy, Recommendation, decide


def policy(**kw) -> Policy:
    base = dict(
        target_per_replica=10,
        min_replicas=1,
        max_replicas=20,
        activation_backlog=0,
        stabilization_seconds=300,
        cooldown_seconds=300,
    )
    return Policy(**{**base, **kw})


# --- examples -------------------------------------------------------------------------------


def test_desired_is_the_backlog_over_the_target_rounded_up():
    d = decide(policy(), backlog=95, current=2, now=0.0)
    assert d.desired == 10
    assert d.reason == "ScaledUp"


def test_no_change_within_ten_percent_of_the_current_load():
    p = policy()
    # 4 replicas carry 40; 36..44 stay at 4 even though ceil(B/T) says 5 for 41..44.
    for backlog in (36, 40, 41, 44):
        assert decide(p, backlog, 4, 0.0).desired == 4, backlog
    assert decide(p, 45, 4, 0.0).desired == 5
    assert decide(p, 35, 4, 0.0, Memory((), 0.0)).desired == 4  # window seeded: holds


def test_scale_down_waits_for_the_window_and_goes_to_its_highest_recommendation():
    p = policy(stabilization_seconds=300)
    m = decide(p, 100, 10, now=0.0).memory  # recommends 10
    m = decide(p, 60, 10, now=100.0, memory=m).memory  # recommends 6
    d = decide(p, 20, 10, now=200.0, memory=m)  # recommends 2, window holds 10
    assert (d.desired, d.reason) == (10, "Stabilizing")
    d = decide(p, 20, 10, now=301.0, memory=d.memory)  # 10 left the window, 6 is highest
    assert (d.desired, d.reason) == (6, "ScaledDown")
    d = decide(p, 20, 6, now=401.0, memory=d.memory)
    assert d.desired == 2


def test_clamped_to_min_and_max_and_says_so():
    p = policy(min_replicas=2, max_replicas=5)
    d = decide(p, 1000, 3, 0.0)
    assert (d.desired, d.limited, d.reason) == (5, "AtMaximum", "ScaledUp")
    d = decide(p, 1000, 5, 1.0, d.memory)
    assert (d.desired, d.reason) == (5, "AtMaximum")
    d = decide(p, 0, 2, 0.0, Memory((), -1000.0))
    assert (d.desired, d.limited) == (2, "AtMinimum")


def test_wakes_from_zero_above_the_activation_value_straight_to_the_need():
    p = policy(min_replicas=0, activation_backlog=3)
    assert decide(p, 3, 0, 0.0).desired == 0
    d = decide(p, 4, 0, 0.0)
    assert (d.desired, d.reason) == (1, "Activated")
    assert decide(p, 55, 0, 0.0).desired == 6


def test_goes_to_zero_only_after_cooldown_and_window_at_or_below_activation():
    p = policy(min_replicas=0, activation_backlog=2, cooldown_seconds=100, stabilization_seconds=50)
    d = decide(p, 30, 3, now=0.0)  # active
    t = 0.0
    replicas = d.desired
    history = []
    while t < 400:
        t += 10
        d = decide(p, 2, replicas, now=t, memory=d.memory)  # at the activation value: inactive
        replicas = d.desired
        history.append((t, replicas))
    zero_at = next(t for t, r in history if r == 0)
    # The cooldown (100 s after the last activity at 0) makes the recommendation 0 from t=100;
    # the last non-zero one (t=90) leaves the 50 s window at t=140.
    assert zero_at == 140
    assert all(r >= 1 for t, r in history if t < 100)
    assert d.reason in {"Idle", "ScaledToZero"}


def test_a_positive_minimum_never_goes_to_zero():
    p = policy(min_replicas=1, activation_backlog=5, cooldown_seconds=0, stabilization_seconds=0)
    assert decide(p, 0, 3, 0.0, Memory((), -1.0)).desired == 1
    assert decide(p, 0, 0, 0.0).desired == 1  # someone scaled to 0 by hand: back to the minimum


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        policy(target_per_replica=0)
    with pytest.raises(ValueError):
        policy(min_replicas=5, max_replicas=4)
    with pytest.raises(ValueError):
        decide(policy(), -1, 1, 0.0)


# --- the HPA, transcribed -------------------------------------------------------------------


class ReferenceHPA:
    """kube-controller-manager's HPA for one External metric with an AverageValue target:
    the replica calculator (GetExternalPerPodMetricReplicas), stabilizeRecommendationWithBehaviors
    with a 0 s scale-up window and the given scale-down window, permissive rate policies, and
    the min/max clamp; the window is seeded with the current size on first sight
    (maybeInitScaleDownStabilizationWindow)."""

    def __init__(self, target: int, min_r: int, max_r: int, window: float, tol: float = 0.1):
        self.target, self.min_r, self.max_r, self.window, self.tol = (
            target,
            min_r,
            max_r,
            window,
            tol,
        )
        self.recommendations: list[tuple[float, int]] | None = None

    def step(self, metric: int, current: int, now: float) -> int:
        if self.recommendations is None:
            self.recommendations = [(now, current)] if self.window > 0 else []
        usage_ratio = float(metric) / (float(self.target) * float(current))
        if usage_ratio < 1.0 - self.tol or usage_ratio > 1.0 + self.tol:
            desired = math.ceil(float(metric) / float(self.target))
        else:
            desired = current
        up_cutoff, down_cutoff = now, now - self.window
        up, down = desired, desired
        for at, rec in self.recommendations:
            if at > up_cutoff:
                up = min(up, rec)
            if at > down_cutoff:
                down = max(down, rec)
        recommendation = current
        if recommendation < up:
            recommendation = up
        if recommendation > down:
            recommendation = down
        self.recommendations = [(at, r) for at, r in self.recommendations if at > down_cutoff]
        self.recommendations.append((now, desired))
        return min(max(recommendation, self.min_r), self.max_r)


@settings(max_examples=300, deadline=None)
@given(
    target=st.integers(1, 50),
    min_r=st.integers(1, 5),
    extra=st.integers(0, 30),
    window=st.sampled_from([0, 15, 60, 300]),
    start=st.integers(1, 30),
    steps=st.lists(
        st.tuples(st.sampled_from([1, 5, 15, 30, 90]), st.integers(0, 2000)),
        min_size=1,
        max_size=40,
    ),
)
def test_same_answers_as_the_hpa_where_the_hpa_acts(target, min_r, extra, window, start, steps):
    max_r = min_r + extra
    p = Policy(target, min_r, max_r, stabilization_seconds=window, cooldown_seconds=0)
    hpa = ReferenceHPA(target, min_r, max_r, window)
    current = min(max(start, min_r), max_r)
    memory, now = None, 0.0
    for dt, backlog in steps:
        now += dt
        expected = hpa.step(backlog, current, now)
        d = decide(p, backlog, current, now, memory)
        assert d.desired == expected, (now, backlog, current)
        memory, current = d.memory, d.desired


# --- properties -----------------------------------------------------------------------------

policies = st.builds(
    lambda target, min_r, extra, activation, window, cooldown: Policy(
        target, min_r, max(min_r, 1) + extra, activation, window, cooldown
    ),
    target=st.integers(1, 50),
    min_r=st.integers(0, 5),
    extra=st.integers(0, 30),
    activation=st.integers(0, 20),
    window=st.integers(0, 600),
    cooldown=st.integers(0, 600),
)
NOW = 10_000.0
memories = st.builds(
    lambda recs, idle_for: Memory(
        tuple(sorted((Recommendation(NOW - age, r) for age, r in recs), key=lambda r: r.at)),
        NOW - idle_for,
    ),
    recs=st.lists(st.tuples(st.integers(1, 900), st.integers(0, 40)), max_size=12),
    idle_for=st.integers(0, 1200),
)
backlogs = st.integers(0, 3000)
replica_counts = st.integers(0, 40)


@settings(max_examples=500, deadline=None)
@given(p=policies, backlog=backlogs, current=replica_counts, memory=st.none() | memories)
def test_never_outside_min_and_max(p, backlog, current, memory):
    d = decide(p, backlog, current, NOW, memory)
    assert p.min_replicas <= d.desired <= p.max_replicas


@settings(max_examples=500, deadline=None)
@given(p=policies, b1=backlogs, b2=backlogs, current=replica_counts, memory=st.none() | memories)
def test_monotone_in_the_backlog(p, b1, b2, current, memory):
    low, high = sorted((b1, b2))
    assert (
        decide(p, low, current, NOW, memory).desired
        <= decide(p, high, current, NOW, memory).desired
    )


@settings(max_examples=500, deadline=None)
@given(p=policies, current=st.integers(1, 40), wobble=st.floats(0.9, 1.1), memory=memories)
def test_no_change_within_the_tolerance_while_active(p, current, wobble, memory):
    assume(p.min_replicas <= current <= p.max_replicas)
    backlog = round(current * p.target_per_replica * wobble)
    ratio = backlog / (current * p.target_per_replica)
    assume(0.9 <= ratio <= 1.1 and backlog > p.activation_backlog)
    assert decide(p, backlog, current, NOW, memory).desired == current


@settings(max_examples=300, deadline=None)
@given(
    p=policies,
    start=st.integers(1, 40),
    steps=st.lists(st.tuples(st.integers(1, 60), st.floats(0.9, 1.1)), min_size=2, max_size=30),
)
def test_no_flapping_over_time_within_the_tolerance(p, start, steps):
    current = min(max(start, p.min_replicas, 1), p.max_replicas)
    assume(current * p.target_per_replica * 0.9 > p.activation_backlog)
    memory, now = None, 0.0
    for dt, wobble in steps:
        now += dt
        backlog = round(current * p.target_per_replica * wobble)
        if not 0.9 <= backlog / (current * p.target_per_replica) <= 1.1:
            continue  # rounding left the band: not this property's case
        d = decide(p, backlog, current, now, memory)
        assert d.desired == current, (now, backlog)
        memory = d.memory


@settings(max_examples=500, deadline=None)
@given(p=policies, backlog=backlogs, current=replica_counts, memory=memories)
def test_scale_down_never_below_what_the_window_allows(p, backlog, current, memory):
    d = decide(p, backlog, current, NOW, memory)
    if d.desired < current:
        in_window = [
            r.replicas for r in memory.recommendations if r.at > NOW - p.stabilization_seconds
        ]
        floor = min(max(in_window, default=0), p.max_replicas)
        assert d.desired >= min(floor, current)
        assert d.desired >= min(max(d.recommendation, p.min_replicas), p.max_replicas)


@settings(max_examples=500, deadline=None)
@given(p=policies, backlog=backlogs, current=replica_counts, memory=st.none() | memories)
def test_zero_only_after_the_cooldown_at_or_below_the_activation_value(p, backlog, current, memory):
    d = decide(p, backlog, current, NOW, memory)
    if d.desired == 0:
        assert p.min_replicas == 0
        assert backlog <= p.activation_backlog
        if current > 0:
            # A fresh memory starts the cooldown now.
            last_active = memory.last_active if memory is not None else NOW
            assert NOW - last_active >= p.cooldown_seconds


@settings(max_examples=300, deadline=None)
@given(p=policies, backlog=backlogs, memory=st.none() | memories)
def test_wakes_from_zero_whenever_the_backlog_is_above_the_activation_value(p, backlog, memory):
    d = decide(p, backlog, 0, NOW, memory)
    if backlog > p.activation_backlog:
        assert d.desired >= min(max(math.ceil(backlog / p.target_per_replica), 1), p.max_replicas)


@settings(max_examples=200, deadline=None)
@given(
    p=policies,
    start=st.integers(0, 40),
    steps=st.lists(st.tuples(st.integers(1, 120), backlogs), min_size=1, max_size=40),
)
def test_over_time_each_scale_down_is_backed_by_the_whole_window(p, start, steps):
    """Simulated runs: every reduction lands no lower than every recommendation the decision
    itself made within the window before it (clamped), and zero comes only after the cooldown."""
    current = start
    memory, now = None, 0.0
    made: list[tuple[float, int]] = []
    last_active = None
    for dt, backlog in steps:
        now += dt
        d = decide(p, backlog, current, now, memory)
        if last_active is None or backlog > p.activation_backlog:
            last_active = now
        if d.desired < current:
            recent = [r for at, r in made if at > now - p.stabilization_seconds]
            assert d.desired >= min(max(recent, default=0), p.max_replicas, current)
        if d.desired == 0 and current > 0:
            assert now - last_active >= p.cooldown_seconds
        made.append((now, d.recommendation))
        memory, current = d.memory, d.desired
