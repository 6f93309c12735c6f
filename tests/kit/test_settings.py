import dataclasses

import pytest

from risingstars.kit.settings import HTTPSettings, SettingsError, load


@dataclasses.dataclass(frozen=True)
class Example(HTTPSettings):
    database_url: str = dataclasses.field(default=None)  # type: ignore[assignment]
    bucket: str | None = None
    ratio: float = 0.5
    enabled: bool = False
    hosts: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.database_url is None:
            raise ValueError("DATABASE_URL is required")


def test_reads_converts_and_defaults() -> None:
    s = load(
        Example,
        {"DATABASE_URL": "postgresql://x", "PORT": "9000", "ENABLED": "yes", "HOSTS": "a, b,"},
    )
    assert (s.port, s.enabled, s.hosts, s.bucket, s.ratio) == (9000, True, ("a", "b"), None, 0.5)
    assert s.drain_seconds == 5.0


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        load(Example, {"DATABASE_URL": "x", "PORT": "eighty", "RATIO": "half", "ENABLED": "maybe"})
    message = str(err.value)
    for name in ("PORT", "RATIO", "ENABLED"):
        assert name in message


def test_validate_hook_reports_missing_required() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL is required"):
        load(Example, {})


def test_required_field_without_default() -> None:
    @dataclasses.dataclass(frozen=True)
    class Needs:
        s3_bucket: str

    with pytest.raises(SettingsError, match="S3_BUCKET is required"):
        load(Needs, {})
    assert load(Needs, {"S3_BUCKET": "b"}).s3_bucket == "b"
