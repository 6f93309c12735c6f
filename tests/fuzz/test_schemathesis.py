"""schemathesis against each HTTP service's own OpenAPI document, in process (ASGI, the app's
lifespan running), on a real PostgreSQL and moto's S3 + SQS.

Every operation is called with generated (valid and invalid) requests; two checks must hold:
no server error (5xx) and no response that breaks the schema its document declares. The
stateful part follows links written into the document here (FastAPI writes none): signup ->
login on auth (only once the document declares their bodies), and create -> status / complete /
cancel of a direct upload on upload.

ST_EXAMPLES (default 25) bounds the examples per operation, ST_STEPS the stateful steps; see
docs/reliability.md for a longer run."""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import importlib.util
import os
import re
import uuid
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import load_all_checks
from schemathesis.config._checks import (
    MissingRequiredHeaderConfig,
    NegativeDataRejectionConfig,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import response_schema_conformance

from risingstars.dev import infra
from risingstars.dev.tokens import AUDIENCE, ISSUER, TokenFactory
from risingstars.kit import db
from risingstars.kit.tokens import TokenVerifier
from risingstars.upload import reads, schemas

EXAMPLES = int(os.environ.get("ST_EXAMPLES", "25"))
STEPS = int(os.environ.get("ST_STEPS", "10"))
CHECKS = [schemathesis.checks.not_a_server_error, response_schema_conformance]
# `--checks all`: every check schemathesis has, including that the document's valid requests
# are accepted and its invalid ones refused, and 405s naming the allowed methods.
load_all_checks()
ALL_CHECKS = REGISTERED_CHECKS.get_all()
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TOKENS = TokenFactory()


def _document(app) -> dict:
    return copy.deepcopy(app.openapi())


def _link(doc: dict, source: tuple[str, str, str], name: str, target: tuple[str, str], **params):
    """An OpenAPI link from `source` (path, method, status) to the operation `target`."""
    path, method, status = source
    operations = doc["paths"]
    if path not in operations or target[0] not in operations:
        return
    response = operations[path][method]["responses"].setdefault(status, {"description": "ok"})
    target_id = operations[target[0]][target[1]]["operationId"]
    link: dict = {"operationId": target_id}
    body = params.pop("requestBody", None)
    if params:
        link["parameters"] = params
    if body is not None:
        link["requestBody"] = body
    response.setdefault("links", {})[name] = link


def _schema(app, doc: dict):
    schema = schemathesis.openapi.from_dict(doc)
    schema.app = app
    schema.location = "/openapi.json"
    return schema


def _migrated(pg: infra.Postgres, service: str) -> str:
    """A fresh database with the service's migrations (risingstars/<service>/migrations)."""
    url = infra.create_database(pg, f"st_{service}_{uuid.uuid4().hex[:10]}")
    package = importlib.util.find_spec(f"risingstars.{service}")
    migrations = Path(next(iter(package.submodule_search_locations))) / "migrations"
    asyncio.run(db.migrate(url, service, migrations))
    return url


def _every_operation(
    schema,
    headers: dict | None = None,
    *,
    checks: list = CHECKS,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE,),
    prepare=None,
) -> None:
    """Bounded examples for each operation (and generation mode); every failing operation is
    reported, not the first only. `prepare(case)` may complete a generated case before it is
    sent. (schemathesis's own pytest parametrization does not run under pytest 9.)"""
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the document lists no operation"
    for operation in operations:
        for mode in modes:

            @BOUNDED
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                if prepare is not None:
                    prepare(case)
                case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except Unsatisfiable:
                # Nothing of the operation can be made invalid (OPTIONS takes no input).
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


# tus PATCH bodies are raw bytes, sent as the octet-stream ones are.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


# -- auth ------------------------------------------------------------------------------------


def _auth_app(pg: infra.Postgres, keys_dir: Path):
    from risingstars.auth import keys
    from risingstars.auth.app import create_app
    from risingstars.auth.settings import Settings
    from risingstars.kit.settings import load

    url = _migrated(pg, "auth")
    keys.generate(keys_dir)
    return create_app(load(Settings, {"DATABASE_URL": url, "AUTH_SIGNING_KEYS_DIR": str(keys_dir)}))


@pytest.fixture(scope="module")
def auth_schema(pg, tmp_path_factory):
    app = _auth_app(pg, tmp_path_factory.mktemp("keys"))
    doc = _document(app)
    login = doc["paths"].get("/api/auth/login", {}).get("post", {})
    if "requestBody" in login:  # the document declares the bodies: follow signup -> login
        _link(
            doc,
            ("/api/auth/signup", "post", "201"),
            "Login",
            ("/api/auth/login", "post"),
            requestBody={"email": "$request.body#/email", "password": "$request.body#/password1"},
        )
    return _schema(app, doc)


def test_auth_api(auth_schema) -> None:
    _every_operation(auth_schema)


# -- upload ----------------------------------------------------------------------------------


def _upload_app(pg: infra.Postgres, moto_url: str):
    from risingstars.upload.app import create_app
    from risingstars.upload.settings import Settings

    url = _migrated(pg, "upload")
    aws = infra.create_aws_resources(moto_url, f"st{uuid.uuid4().hex[:10]}")
    settings_ = Settings(
        database_url=url,
        jwks_url="http://127.0.0.1:9/.well-known/jwks.json",  # the verifier has the keys
        s3_bucket=aws.bucket,
        jobs_queue_url=aws.jobs_queue_url,
        events_queue_url=aws.events_queue_url,
        aws_endpoint_url=moto_url,
        drain_seconds=0,
        rankings_cache_seconds=0,
        events_wait_seconds=1,
    )
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=TOKENS.jwks)
    return create_app(settings_, verifier=verifier)


@pytest.fixture(scope="module")
def upload_schema(pg, moto_url):
    app = _upload_app(pg, moto_url)
    doc = _document(app)
    created = ("/api/videos/uploads", "post", "201")
    by_id = {"path.upload_id": "$response.body#/upload_id"}
    _link(doc, created, "Status", ("/api/videos/uploads/{upload_id}", "get"), **by_id)
    _link(doc, created, "Complete", ("/api/videos/uploads/{upload_id}/complete", "post"), **by_id)
    _link(doc, created, "Cancel", ("/api/videos/uploads/{upload_id}", "delete"), **by_id)
    schema = _schema(app, doc)
    # The tus protocol's own refusals: 412 for a missing or other Tus-Resumable, 413 for an
    # Upload-Length over the maximum (the protocol fixes them; the document declares them).
    checks = schema.config.checks
    checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[*checks.negative_data_rejection.expected_statuses, 412, 413]
    )
    checks.missing_required_header = MissingRequiredHeaderConfig(
        expected_statuses=[*checks.missing_required_header.expected_statuses, 412]
    )
    return schema


# One caller for the whole run, so what a request creates is the next one's to find.
CALLER = TOKENS.headers(str(uuid.uuid4()), username="fuzzer", city="Bogotá")


@pytest.fixture(scope="module")
def valid_clip(tmp_path_factory) -> bytes:
    """An MP4 the service accepts: a file's content cannot be stated in the document, so the
    positive examples of the streamed upload carry this one with their generated title."""
    from risingstars.dev import clips

    path = tmp_path_factory.mktemp("clip") / "ok.mp4"
    clips.make_clip(
        path, picture="testsrc2", size="1920x1080", fps=2, seconds=21,
        video=("-pix_fmt", "yuv420p", "-crf", "45"),
    )  # fmt: skip
    return path.read_bytes()


def test_upload_api(upload_schema, valid_clip) -> None:
    def with_a_real_video(case) -> None:
        """The caller's token (unless a negative example left it out on purpose), and what a
        document cannot promise, wherever a value of the document's form was generated: a
        file that is an acceptable video, metadata whose title decodes, a cursor the service
        wrote. (A value the example made invalid on purpose does not match the form: kept.)"""
        headers = case.headers or {}
        if not case.meta.is_negative_at(ParameterLocation.HEADER) or "Authorization" in headers:
            case.headers = headers = {**headers, **CALLER}
        body = case.body if case.path == "/api/videos/upload" else None
        # A body made invalid on purpose keeps its file too: a form serialises a mutated title
        # (null, a number) as text, and only the file then tells the request apart.
        body_negative = case.meta.is_negative_at(ParameterLocation.BODY)
        if isinstance(body, dict) and "video_file" in body and not body_negative:
            body["video_file"] = valid_clip
        metadata = headers.get("Upload-Metadata")
        if isinstance(metadata, str) and re.fullmatch(schemas.TUS_METADATA_PATTERN, metadata):
            headers["Upload-Metadata"] = "title " + base64.b64encode(b"Mi jugada").decode()
        after = (case.query or {}).get("after")
        if isinstance(after, str) and re.fullmatch(reads.CURSOR_PATTERN, after):
            case.query["after"] = reads.cursor(datetime.datetime.now(datetime.UTC), uuid.uuid4())

    _every_operation(
        upload_schema,
        checks=ALL_CHECKS,
        modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
        prepare=with_a_real_video,
    )


# -- stateful --------------------------------------------------------------------------------


def _run_state_machine(schema, headers: dict | None = None) -> None:
    machine = schema.as_state_machine()

    class Machine(machine):
        def get_call_kwargs(self, case):
            return {"headers": headers} if headers else {}

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=settings(
            max_examples=max(1, EXAMPLES // 5),
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_upload_stateful(upload_schema) -> None:
    _run_state_machine(upload_schema, CALLER)


def test_auth_stateful(auth_schema) -> None:
    login = auth_schema.raw_schema["paths"]["/api/auth/login"]["post"]
    if "requestBody" not in login:
        # Bodies parsed by hand are not in the document: there is nothing to link yet, and the
        # stateless run above already sends what the document allows.
        return
    _run_state_machine(auth_schema)
