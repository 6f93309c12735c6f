"""Every setting a service reads is set by the chart, and the chart sets nothing they don't."""

from __future__ import annotations

import pytest
from chart import service_settings
from chart.manifests import component, env_names, env_value, of_kind, pod_spec
from chart.rendering import CHART, VALUES_SETS, render

SETS = sorted(VALUES_SETS)
CONTRACTS = service_settings.conventions()

# How each optional variable of docs/conventions.md is reached through values (a new optional
# variable fails test_every_optional_variable_has_a_value until it is wired in the chart).
OPTIONAL_VALUES = {
    "AWS_ENDPOINT_URL": ("aws.endpointUrl", "http://emulator:4566"),
    "MEDIA_BASE_URL": ("upload.mediaBaseUrl", "https://media.example.com"),
    "FFMPEG_PATH": ("processor.settings.ffmpegPath", "/usr/bin/ffmpeg"),
}


# A migration Job is given the database and nothing else (`migrate` needs only DATABASE_URL).
MIGRATION_ENV = {"DATABASE_URL", "LOG_LEVEL"}


def read_by(service: str) -> set[str]:
    return service_settings.settings_fields(service)


def service_containers(objects: list[dict], workers: bool = False) -> list[tuple[str, bool, dict]]:
    """(service, is_migration, container) for every container running one of our services; with
    workers, also the containers running another command of a service's image (upload-worker)."""
    found = []
    for obj in objects:
        if obj["kind"] not in {"Deployment", "Job"}:
            continue
        service = component(obj) or ""
        if workers:
            service = service.removesuffix("-worker")
        if service in service_settings.SERVICES:
            for container in pod_spec(obj)["containers"]:
                found.append((service, obj["kind"] == "Job", container))
    return found


@pytest.mark.parametrize("name", SETS)
def test_every_variable_of_the_conventions_is_set(renders, name):
    checked = set()
    for service, migration, container in service_containers(renders[name]):
        if migration:
            continue
        contract = CONTRACTS[service]
        missing = contract.variables - contract.optional - env_names(container)
        assert not missing, f"{service} ({name}) lacks {sorted(missing)}"
        checked.add(service)
    assert {"auth", "upload", "processor"} <= checked


@pytest.mark.parametrize("name", SETS)
def test_every_required_setting_is_set_for_the_services_and_their_workers(renders, name):
    for service, migration, container in service_containers(renders[name], workers=True):
        if migration:
            continue
        missing = service_settings.required_fields(service) - env_names(container)
        assert not missing, f"{service} ({name}) lacks {missing}"


@pytest.mark.parametrize("name", SETS)
def test_migrations_get_the_database_and_nothing_else(renders, name):
    for service, migration, container in service_containers(renders[name]):
        if not migration:
            continue
        assert env_names(container) == MIGRATION_ENV, service
        assert "envFrom" not in container, f"{service} migrate gets AWS credentials"
        assert service_settings.migrate_required_fields() <= MIGRATION_ENV, service


@pytest.mark.parametrize("name", SETS)
def test_the_chart_sets_only_variables_the_services_read(renders, name):
    for service, _, container in service_containers(renders[name], workers=True):
        unknown = env_names(container) - read_by(service)
        assert not unknown, f"{service} ({name}) is given {sorted(unknown)}, which it never reads"


def test_every_optional_variable_has_a_value():
    optional = set().union(*(c.optional for c in CONTRACTS.values()))
    assert optional <= set(OPTIONAL_VALUES), f"wire {optional - set(OPTIONAL_VALUES)} in the chart"


@pytest.mark.parametrize("variable", sorted(OPTIONAL_VALUES))
def test_optional_variables_are_set_from_values_and_left_out_when_empty(variable):
    path, value = OPTIONAL_VALUES[variable]
    readers = {s for s, c in CONTRACTS.items() if variable in c.optional}
    with_value = service_containers(render(settings={path: value}))
    without = service_containers(render(settings={path: ""}))
    for service, migration, container in with_value:
        if service in readers and not migration:
            assert env_value(container, variable) == value, service
    for service, _, container in without:
        assert variable not in env_names(container), service


def test_settings_reach_the_containers_with_their_values():
    objects = render(
        (CHART / "values-eks.yaml",),
        settings={"auth.settings.loginMaxFailures": 9, "upload.settings.maxUploadBytes": 209715200},
    )
    by_service = {s: c for s, migration, c in service_containers(objects) if not migration}
    assert env_value(by_service["auth"], "LOGIN_MAX_FAILURES") == "9"
    assert env_value(by_service["upload"], "MAX_UPLOAD_BYTES") == "209715200"
    assert env_value(by_service["upload"], "JOBS_QUEUE_URL").startswith("https://sqs.")
    assert env_value(by_service["upload"], "JWKS_URL") == (
        "http://rising-stars-auth.rising-stars.svc:80/.well-known/jwks.json"
    )
    database = {
        s: next(e for e in c["env"] if e["name"] == "DATABASE_URL")["valueFrom"]["secretKeyRef"]
        for s, c in by_service.items()
        if s in {"auth", "upload"}
    }
    assert database == {
        "auth": {"name": "rising-stars-database", "key": "auth-url"},
        "upload": {"name": "rising-stars-database", "key": "upload-url"},
    }


def test_the_signing_keys_directory_is_the_mounted_secret():
    objects = render()
    (deployment,) = [d for d in of_kind(objects, "Deployment") if component(d) == "auth"]
    (container,) = pod_spec(deployment)["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env_value(container, "AUTH_SIGNING_KEYS_DIR") == mounts["signing-keys"]
