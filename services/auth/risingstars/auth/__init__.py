"""Rising Stars auth service."""
