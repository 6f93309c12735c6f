"""Local development and test infrastructure; never shipped in an image."""
