"""What every Rising Stars service needs: settings, logs, metrics, lifecycle, database, AWS
clients, token verification. The one domain fact here is the access token's claim set
(`tokens.Claims`: `sub`, `username`, `city`), a contract between the auth service, which issues
it, and every service that verifies it."""
