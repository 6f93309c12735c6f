"""Rising Stars operator service."""
