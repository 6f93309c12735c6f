"""Rising Stars processor service."""
