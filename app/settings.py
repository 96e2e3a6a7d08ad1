"""Configuration from the environment, in one place."""
from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,50400,72000,86400"


class Settings(BaseSettings):
    """Every `PACTWATCH_*` variable of API.md, and a few tuning knobs."""

    model_config = SettingsConfigDict(env_prefix="PACTWATCH_", extra="ignore")

    database_url: str = "sqlite:///./pactwatch.db"
    admin_token: SecretStr | None = None
    public_read: bool = True
    webhook_allow_private: bool = False
    webhook_retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    webhook_timeout_seconds: float = 15.0
    snapshot_interval: int = Field(default=1000, ge=10)
    aggregate_cache_size: int = Field(default=1000, ge=0)
    read_your_writes_wait_seconds: float = Field(default=2.0, ge=0)
    log_json: bool = True

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        steps = [s.strip() for s in value.split(",") if s.strip()]
        if not all(s.replace(".", "", 1).isdigit() for s in steps):
            raise ValueError("a comma-separated list of seconds")
        return ",".join(steps)

    @property
    def retry_schedule(self) -> list[float]:
        return [float(s) for s in self.webhook_retry_schedule.split(",") if s]

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing `env` for this configuration (tables made by Alembic)."""
        url = self.database_url
        if url.startswith("sqlite") and "timeout=" not in url:
            # Wait up to 30 s (not pysqlite's 5 s) for another process's write lock.
            url += ("&" if "?" in url else "?") + "timeout=30"
        return {
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": url,
            "CREATE_TABLE": "no",
            "AGGREGATE_CACHE_MAXSIZE": str(self.aggregate_cache_size) if self.aggregate_cache_size else "",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
