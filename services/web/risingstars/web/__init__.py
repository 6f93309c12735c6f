"""Rising Stars on the web: serves the built app."""
