"""Rising Stars upload service."""
