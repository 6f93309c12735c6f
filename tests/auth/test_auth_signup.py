"""POST /api/auth/signup: every contract row and status code, and hostile input in every field."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import pytest
from prometheus_client import REGISTRY

from risingstars.auth import passwords

FIELDS = ("first_name", "last_name", "email", "password1", "password2", "city", "country")
TEXT_FIELDS = ("first_name", "last_name", "city", "country")


async def post_escaped(client, body):
    # JSON may carry a lone surrogate as an escape, which no UTF-8 encoder would produce.
    content = json.dumps(body, ensure_ascii=True)
    headers = {"Content-Type": "application/json"}
    return await client.post("/api/auth/signup", content=content, headers=headers)


async def test_signup_returns_201_with_the_contract_body(shared_client, signup_body) -> None:
    before = REGISTRY.get_sample_value("auth_signups_total") or 0
    body = signup_body(email="Jugador.Uno@Example.com")
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 201
    data = response.json()
    assert data["message"] == "Usuario creado exitosamente."
    assert str(uuid.UUID(data["id"])) == data["id"]
    for field in ("email", "first_name", "last_name", "city", "country"):
        assert data[field] == body[field]
    assert re.fullmatch(r"ana-\d{4}", data["username"]), data["username"]
    assert "password" not in response.text and "password_hash" not in data
    assert REGISTRY.get_sample_value("auth_signups_total") == before + 1


async def test_password_is_stored_only_as_a_slow_salted_hash(client, signup_body) -> None:
    body = signup_body()
    user_id = (await client.post("/api/auth/signup", json=body)).json()["id"]
    stored = await client.app.state.pool.fetchval(
        "SELECT password_hash FROM auth.users WHERE id = $1", uuid.UUID(user_id)
    )
    assert body["password1"] not in stored
    assert stored.startswith("$argon2id$") and not passwords.needs_rehash(stored)
    assert passwords.verify_password(body["password1"], stored)


async def test_duplicate_email_is_refused_case_insensitively(client, new_account, signup_body):
    first = await new_account(client, email="Carlos@Example.com")
    again = signup_body(email="  cArLoS@example.COM ")
    response = await client.post("/api/auth/signup", json=again)
    assert response.status_code == 400
    assert "cArLoS@example.COM" in response.json()["detail"]
    count = await client.app.state.pool.fetchval("SELECT count(*) FROM auth.users")
    assert count == 1 and first["email"] == "Carlos@Example.com"


async def test_concurrent_duplicate_signups_create_one_account(client, signup_body) -> None:
    body = signup_body()
    responses = await asyncio.gather(
        *(client.post("/api/auth/signup", json=body) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [201, 400, 400]
    assert await client.app.state.pool.fetchval("SELECT count(*) FROM auth.users") == 1


async def test_passwords_that_differ_are_refused(shared_client, signup_body) -> None:
    body = signup_body(password2="Otra-Clave-2024")
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": "Las contraseñas no coinciden", "code": "invalid_request"}


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Ab1-xyz", "al menos 8 caracteres"),
        ("password", "demasiado común"),
        ("12345678", "demasiado común"),
        ("aaaaaaaaaaaa", "demasiado común"),
    ],
)
async def test_weak_passwords_are_refused(shared_client, signup_body, password, expected) -> None:
    body = signup_body(password1=password, password2=password)
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert expected in response.json()["detail"]


async def test_password_equal_to_the_email_is_refused(shared_client, signup_body) -> None:
    body = signup_body(email="mariana.gomez@example.com")
    body["password1"] = body["password2"] = "mariana.gomez"
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert "email" in response.json()["detail"]


async def test_minimum_password_length_is_configurable(make_settings, run_app, signup_body):
    async with run_app(make_settings(password_min_length=14)) as client:
        short = signup_body(password1="Vuelo-Alto-24", password2="Vuelo-Alto-24")
        response = await client.post("/api/auth/signup", json=short)
        assert response.status_code == 400
        assert "14" in response.json()["detail"]


@pytest.mark.parametrize("field", FIELDS)
async def test_each_missing_field_is_a_400_naming_it(shared_client, signup_body, field) -> None:
    response = await shared_client.post("/api/auth/signup", json=signup_body(**{field: ...}))
    assert response.status_code == 400
    assert response.json() == {"detail": f"Campo requerido: {field}", "code": "invalid_request"}


async def test_empty_or_non_string_fields_are_refused(shared_client, signup_body) -> None:
    for field in FIELDS:
        blank = ["   "] if field not in ("password1", "password2") else []  # spaces are a password
        for value in [None, "", *blank, 42, ["x"], {"a": 1}, True]:
            response = await shared_client.post(
                "/api/auth/signup", json=signup_body(**{field: value})
            )
            assert response.status_code == 400, (field, value)
            assert field in response.json()["detail"], (field, value)


@pytest.mark.parametrize(
    "email",
    [
        "sin-arroba.example.com",
        "dos@@example.com",
        "@example.com",
        "ana@",
        "ana@localhost",
        "ana@example..com",
        "ana@-example.com",
        "ana..b@example.com",
        "ana b@example.com",
        "ana@example.123",
        "'; DROP TABLE auth.users;--@example.com",
        "ana@example.com\nBcc: x@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
async def test_invalid_emails_are_refused(shared_client, signup_body, email) -> None:
    response = await shared_client.post("/api/auth/signup", json=signup_body(email=email))
    assert response.status_code == 400
    assert "email" in response.json()["detail"]


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_text_fields_have_a_maximum_length(shared_client, signup_body, field) -> None:
    assert (
        await shared_client.post("/api/auth/signup", json=signup_body(**{field: "x" * 100}))
    ).status_code == 201
    response = await shared_client.post("/api/auth/signup", json=signup_body(**{field: "x" * 101}))
    assert response.status_code == 400
    assert "100" in response.json()["detail"]


async def test_overlong_password_is_refused(shared_client, signup_body) -> None:
    long = "Ab-1" * 65
    response = await shared_client.post(
        "/api/auth/signup", json=signup_body(password1=long, password2=long)
    )
    assert response.status_code == 400


async def test_fields_are_stripped(shared_client, signup_body) -> None:
    body = signup_body(first_name="  Ana  ", city="\tBogotá ", email="  ana.trim@example.com ")
    data = (await shared_client.post("/api/auth/signup", json=body)).json()
    assert (data["first_name"], data["city"], data["email"]) == (
        "Ana",
        "Bogotá",
        "ana.trim@example.com",
    )


HOSTILE = [
    "Robert'); DROP TABLE auth.users;--",
    "' OR '1'='1",
    '"; SELECT pg_sleep(10); --',
    "\\'; DELETE FROM auth.users WHERE ''='",
    "%_\\%",
    "$1 $2 $$body$$",
    "Zoë Ñúñez-Ölçer",
    "张伟",
    "محمد",
    "🏀 Rising ⭐",
    "👨‍👩‍👧",
    "Ǆemal Čolić",
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_sql_meta_characters_and_unicode_round_trip_in_text_fields(
    shared_client, signup_body, login, value
) -> None:
    body = signup_body(**{f: value for f in TEXT_FIELDS})
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert all(data[f] == value for f in TEXT_FIELDS)
    token = (await login(shared_client, body["email"])).json()["access_token"]
    me = (
        await shared_client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    ).json()
    assert all(me[f] == value for f in TEXT_FIELDS)
    pool = shared_client.app.state.pool
    assert (
        await pool.fetchval("SELECT count(*) FROM auth.users WHERE email = $1", body["email"]) == 1
    )


@pytest.mark.parametrize(
    "password",
    ["'; DROP TABLE auth.users;--", "contraseña-ñandú-🏀", "我的密码是篮球明星", "\\x00' OR 1=1"],
)
async def test_sql_meta_characters_and_unicode_in_passwords(
    shared_client, signup_body, login, password
) -> None:
    body = signup_body(password1=password, password2=password)
    assert (await shared_client.post("/api/auth/signup", json=body)).status_code == 201
    assert (await login(shared_client, body["email"], password)).status_code == 200
    assert (await login(shared_client, body["email"], password + "x")).status_code == 401


async def test_password_matches_in_either_unicode_normal_form(shared_client, signup_body, login):
    composed, decomposed = "Canción-de-cuna", "Cancio\u0301n-de-cuna"
    body = signup_body(password1=composed, password2=composed)
    assert (await shared_client.post("/api/auth/signup", json=body)).status_code == 201
    assert (await login(shared_client, body["email"], decomposed)).status_code == 200


@pytest.mark.parametrize(
    "email", ["o'brien+tag@example.com", "josé.niño@bücher.example", "用户@例子.广告"]
)
async def test_unusual_but_valid_emails_round_trip(client, signup_body, login, email) -> None:
    response = await client.post("/api/auth/signup", json=signup_body(email=email))
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email
    assert (await login(client, email.upper())).status_code == 200


@pytest.mark.parametrize("field", [*TEXT_FIELDS, "email", "username"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "a\u202eb", "a\ud800b"])
async def test_control_characters_and_lone_surrogates_are_refused(
    shared_client, signup_body, field, bad
):
    value = f"ana{bad}@example.com" if field == "email" else f"ana{bad}"
    response = await post_escaped(shared_client, signup_body(**{field: value}))
    assert response.status_code == 400
    assert field in response.json()["detail"]


@pytest.mark.parametrize("field", ["password1", "password2"])
async def test_lone_surrogates_in_passwords_are_refused(shared_client, signup_body, field) -> None:
    body = signup_body(**{field: "Clave-\ud83d-1234"})
    response = await post_escaped(shared_client, body)
    assert response.status_code == 400
    assert field in response.json()["detail"]


async def test_finding_16_derived_usernames_do_not_reveal_the_email(client, new_account) -> None:
    account = await new_account(client, first_name="Zoe", email="Lucia.Gomez.1990@example.com")
    assert re.fullmatch(r"zoe-\d{4}", account["username"]), account["username"]
    assert "lucia" not in account["username"] and "gomez" not in account["username"]


async def test_derived_usernames_are_made_unique(client, new_account) -> None:
    names = [(await new_account(client, first_name="Lucía"))["username"] for _ in range(3)]
    assert all(re.fullmatch(r"lucia-\d{4,}", name) for name in names), names
    assert len(set(names)) == 3


async def test_a_taken_derived_username_gets_another_suffix(client, new_account, monkeypatch):
    from risingstars.auth import usernames

    first = await new_account(client, first_name="Ana")
    picks = iter([int(first["username"].rsplit("-", 1)[1]), 77])
    monkeypatch.setattr(usernames.secrets, "randbelow", lambda _: next(picks))
    assert (await new_account(client, first_name="Ana"))["username"] == "ana-0077"


@pytest.mark.parametrize(
    ("first_name", "expected"),
    [
        ("_", r"jugador-\d{4}"),
        ("Al", r"al-\d{4}"),
        ("张伟", r"jugador-\d{4}"),
        ("María José " + "x" * 40, r"maria-jose-x{10}-\d{4}"),
    ],
)
async def test_derived_usernames_are_always_valid(client, new_account, first_name, expected):
    username = (await new_account(client, first_name=first_name))["username"]
    assert re.fullmatch(expected, username), username
    assert len(username) <= 30


async def test_chosen_username_is_kept_and_must_be_unique(client, new_account, signup_body):
    chosen = await new_account(client, username="  Estrella_10 ")
    assert chosen["username"] == "Estrella_10"
    response = await client.post("/api/auth/signup", json=signup_body(username="estrella_10"))
    assert response.status_code == 400
    assert "estrella_10" in response.json()["detail"]


async def test_empty_username_means_derive_one(client, new_account) -> None:
    account = await new_account(client, email="pedro@example.com", username="")
    assert re.fullmatch(r"ana-\d{4}", account["username"]), account["username"]


@pytest.mark.parametrize(
    "username", ["ab", "x" * 31, "con espacio", "a'; DROP TABLE auth.users;--", "a@b", 7]
)
async def test_invalid_usernames_are_refused(shared_client, signup_body, username) -> None:
    response = await shared_client.post("/api/auth/signup", json=signup_body(username=username))
    assert response.status_code == 400
    assert "username" in response.json()["detail"]


async def test_unicode_usernames_are_accepted(client, new_account) -> None:
    assert (await new_account(client, username="Muñoz.张"))["username"] == "Muñoz.张"


async def test_unknown_fields_are_ignored(shared_client, signup_body) -> None:
    body = signup_body(is_admin=True, id="00000000-0000-0000-0000-000000000000")
    response = await shared_client.post("/api/auth/signup", json=body)
    assert response.status_code == 201
    assert response.json()["id"] != body["id"]


async def test_database_constraint_enforces_case_insensitive_email(client, new_account) -> None:
    account = await new_account(client, email="unico@example.com")
    with pytest.raises(asyncpg.UniqueViolationError):
        await client.app.state.pool.execute(
            "INSERT INTO auth.users (id, email, username, first_name, last_name, city, country,"
            " password_hash) VALUES ($1, 'UNICO@EXAMPLE.COM', 'otro', 'a', 'b', 'c', 'd', 'x')",
            uuid.uuid4(),
        )
    assert account["email"] == "unico@example.com"


async def test_finding_5_signups_are_throttled_per_address(
    make_settings, run_app, signup_body
) -> None:
    settings = make_settings(signup_max_per_ip=3, signup_window_seconds=3600)
    async with (
        run_app(settings, ip="203.0.113.9") as stuffer,
        run_app(settings, ip="198.51.100.30") as neighbour,
    ):
        responses = await asyncio.gather(
            *(stuffer.post("/api/auth/signup", json=signup_body()) for _ in range(6))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 3 + [429] * 3, codes
        refused = next(r for r in responses if r.status_code == 429)
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 3600
        assert refused.json() == {
            "detail": "Demasiados registros desde esta dirección. "
            f"Intente de nuevo en {retry_after} segundos.",
            "code": "too_many",
        }
        pool = stuffer.app.state.pool
        assert await pool.fetchval("SELECT count(*) FROM auth.users") == 3
        # Another address is unaffected.
        assert (await neighbour.post("/api/auth/signup", json=signup_body())).status_code == 201


async def test_refused_signups_do_not_count_against_the_address(
    make_settings, run_app, signup_body
) -> None:
    async with run_app(make_settings(signup_max_per_ip=1)) as client:
        for _ in range(3):
            bad = signup_body(password2="otra-cosa-distinta")
            assert (await client.post("/api/auth/signup", json=bad)).status_code == 400
        assert (await client.post("/api/auth/signup", json=signup_body())).status_code == 201
        assert (await client.post("/api/auth/signup", json=signup_body())).status_code == 429
