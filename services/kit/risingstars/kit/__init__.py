"""What every Rising Stars service needs, and nothing domain-specific."""
