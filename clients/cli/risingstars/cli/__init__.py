"""`rising-stars`: a command-line client of the public API, for players and for scripts."""
