"""Busy-pod protection's pure parts: the in-flight gauge, and how far a scale-in may go."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from risingstars.operator.busypods import PodLoad, live_pods, parse_in_flight, plan_scale_in
from risingstars.operator.kube import selector_string


def test_reads_the_in_flight_gauge_from_prometheus_text():
    registry = CollectorRegistry()
    Gauge("processor_jobs_in_flight", "jobs", registry=registry).set(2)
    Gauge("other_gauge", "x", registry=registry).set(7)
    assert parse_in_flight(generate_latest(registry).decode()) == 2
    labelled = 'processor_jobs_in_flight{worker="a"} 1\nprocessor_jobs_in_flight{worker="b"} 2\n'
    assert parse_in_flight(labelled) == 3


def test_a_pod_without_the_gauge_is_not_taken_for_idle():
    with pytest.raises(ValueError, match="processor_jobs_in_flight"):
        parse_in_flight("other_gauge 0\n")
    assert not PodLoad("p", None, None).idle and PodLoad("p", None, None).cost == 1


def loads(*in_flight: int | None) -> list[PodLoad]:
    return [PodLoad(f"p{i}", n, None) for i, n in enumerate(in_flight)]


def test_removes_no_more_pods_than_are_idle():
    plan = plan_scale_in(loads(0, 1, 2, 0), current=4, desired=1, busy_may_go=False)
    assert (plan.replicas, plan.idle, plan.busy, plan.limited) == (2, 2, 2, True)
    assert plan.costs == {"p0": "0", "p1": "1", "p2": "2", "p3": "0"}


def test_busy_pods_may_go_when_the_grace_period_covers_their_jobs():
    plan = plan_scale_in(loads(0, 1, 2, 0), current=4, desired=1, busy_may_go=True)
    assert (plan.replicas, plan.limited) == (1, False)


def test_unknown_pods_count_as_busy_and_replicas_without_pods_cost_nothing():
    plan = plan_scale_in(loads(None, 0), current=4, desired=1, busy_may_go=False)
    assert plan.replicas == 1  # two replicas have no pod yet, one pod is idle
    plan = plan_scale_in(loads(None, None), current=2, desired=0, busy_may_go=False)
    assert (plan.replicas, plan.limited) == (2, True)


def test_only_changed_costs_are_written():
    current = [PodLoad("a", 0, "0"), PodLoad("b", 3, "1")]
    plan = plan_scale_in(current, current=2, desired=1, busy_may_go=False)
    assert plan.costs == {"b": "3"}


def test_terminating_and_finished_pods_do_not_count():
    pods = [
        {"metadata": {"name": "a"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
        {"metadata": {"name": "c"}, "status": {"phase": "Succeeded"}},
    ]
    assert [p["metadata"]["name"] for p in live_pods(pods)] == ["a"]


def test_label_selectors_become_query_strings():
    selector = {
        "matchLabels": {"app": "processor", "tier": "worker"},
        "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == "app=processor,tier=worker,zone in (a,b),!canary"
