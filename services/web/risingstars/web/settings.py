"""The web component's configuration, read once from the environment at start-up."""

from __future__ import annotations

import dataclasses

from risingstars.kit import settings as kit_settings
from risingstars.kit.settings import HTTPSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(HTTPSettings):
    # The build's output (`node web/build.mjs`): index.html and assets/. Empty: the copy inside
    # this package, where the build writes by default and the image installs it.
    web_root: str = ""
    # Content-Security-Policy sources of the videos and thumbnails the API links to (presigned
    # S3 URLs, or MEDIA_BASE_URL's host): images and media only, never scripts.
    web_media_sources: str = "https:"

    def validate(self) -> None:
        if any(c in self.web_media_sources for c in ";,'\"\n"):
            raise ValueError("WEB_MEDIA_SOURCES is a space-separated list of CSP sources")


def load() -> Settings:
    return kit_settings.load(Settings)
