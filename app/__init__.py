"""pactwatch's HTTP API, dashboard, CLI and workers."""
