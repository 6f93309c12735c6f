"""The system-level load test: the client's plan (Locust, headless), the capacity search, the
worker scenario, and the report generator. `make loadtest` / `make loadtest-report`."""
