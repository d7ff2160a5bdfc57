"""Configuration: every knob is an environment variable with the ``STORYREEL_`` prefix."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storyreel.providers import PROVIDERS, Price, ProviderLimit

# The x264 presets an encode may use, fastest first (each makes the same picture quality at
# CRF, in less CPU and a larger file the faster it is).
Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]
DEFAULT_PRESET: Preset = "veryfast"

__all__ = ["DEFAULT_PRESET", "Preset", "Price", "ProviderLimit", "Settings", "get_settings"]


class Settings(BaseSettings):
    """Process-wide settings. Workflows never read these: values reach them in their input."""

    model_config = SettingsConfigDict(
        env_prefix="STORYREEL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(
        default=Path(".storyreel"), description="Root of local media, records and server state."
    )
    database_url: str | None = Field(
        default=None,
        description="Record database (postgresql://... uses psycopg 3); "
        "empty = SQLite file data_dir/storyreel.db.",
    )
    api_key_pepper: SecretStr = Field(
        default=SecretStr(""),
        description="Server-side secret mixed into API key hashes; changing it voids every key.",
    )
    session_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signs the page's session cookies; empty = derived from the API key "
        "pepper, or without one a random secret kept in data_dir/session-secret.",
    )
    session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="Lifetime of a page session cookie; each page load renews it.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The key the CLI sends; default: the one 'storyreel up' wrote to data_dir.",
    )
    max_running_generations: int = Field(
        default=10, ge=1, description="Per user: generations running at once."
    )
    max_asset_bytes: int = Field(
        default=4 * 1024**3,
        ge=1,
        description="Largest upload to POST /v1/assets, in bytes (streamed: memory stays flat).",
    )
    max_asset_seconds: float = Field(
        default=600.0, gt=0, description="Longest uploaded video or audio, in seconds."
    )
    batch_concurrency: int = Field(
        default=5,
        ge=1,
        le=500,
        description="Per batch: generations running at once (they also count toward "
        "max_running_generations).",
    )
    requests_per_minute: int = Field(
        default=600, ge=1, description="Per user and API process: /v1 requests per minute."
    )
    storage_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix for S3 (endpoint from AWS_ENDPOINT_URL); "
        "empty = local files under data_dir/media.",
    )
    presign_expiry_seconds: int = Field(
        default=3600, ge=1, description="Lifetime of presigned media URLs."
    )
    temporal_address: str = Field(default="127.0.0.1:7233", description="Temporal frontend.")
    temporal_namespace: str = "default"
    temporal_ui_url: str = Field(
        default="http://127.0.0.1:8233", description="Base URL of the Temporal Web UI, for links."
    )
    workflow_task_queue: str = Field(
        default="storyreel-workflows", description="Queue of the generation workflow."
    )
    media_task_queue: str = Field(
        default="storyreel-media",
        description="Queue of planning, storyboard, stitching and publishing activities.",
    )
    clip_task_queue_prefix: str = Field(
        default="storyreel-clips",
        description="Clip activities run on '<prefix>-<provider>', one queue per provider.",
    )
    max_parallel_clips: int = Field(default=5, ge=1, le=64)
    review_window_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="How long a run with review: storyboard waits in awaiting_approval.",
    )
    retry_window_seconds: int = Field(
        default=24 * 3600, ge=1, description="How long a run waits in awaiting_retry."
    )
    clip_timeout_seconds: float = Field(
        default=600, gt=0, description="How long one clip attempt may take before it is retried."
    )
    executor_workers: int = Field(
        default=0, ge=0, description="Threads for blocking FFmpeg work; 0 = sized to the machine."
    )
    ffmpeg_path: str | None = Field(
        default=None, description="FFmpeg binary; default is the one shipped by imageio-ffmpeg."
    )
    font_file: Path | None = Field(
        default=None,
        description="TrueType font for drawn text; default Roboto from font-roboto. A caption "
        "in a script it lacks is drawn in an installed font that has it (fontconfig).",
    )
    heartbeat_throttle_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Most time between heartbeats sent to Temporal: how live clip progress is.",
    )
    clip_providers: list[str] = Field(
        default_factory=lambda: list(PROVIDERS),
        description="Providers the API accepts; each needs workers on its clip queue.",
    )
    simulator_url: str | None = Field(
        default=None,
        description="A running Replicate-protocol simulator; 'provider: simulator' uses it.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where providers reach this API (e.g. https://storyreel.example.com); set, "
        "clips are created with a webhook to <public_url>/v1/webhooks/<provider> and wait for "
        "it instead of polling. Empty = polling (the offline default).",
    )
    webhook_fallback_poll_seconds: float = Field(
        default=60,
        gt=0,
        description="With webhooks: a clip's prediction is read this often anyway, in case a "
        "delivery was lost.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Outbound webhooks (a request's 'webhook') may go to http and to loopback, "
        "private and link-local hosts: local development only ('storyreel up' sets it).",
    )
    webhook_retry_initial_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Outbound webhooks: the first wait before a failed delivery is retried "
        "(doubling up to an hour, for 25 hours).",
    )
    replicate_webhook_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias="REPLICATE_WEBHOOK_SIGNING_SECRET",
        description="Replicate's whsec_ signing secret; empty = fetched once from "
        "GET /v1/webhooks/default/secret with REPLICATE_API_TOKEN.",
    )
    fal_queue_url: str | None = Field(
        default=None,
        description="fal's queue API (default https://queue.fal.run; the simulator's is "
        "<simulator>/fal). 'provider: fal' needs FAL_KEY or this.",
    )
    fal_schema_url: str | None = Field(
        default=None,
        description="Where fal publishes each endpoint's OpenAPI document (default "
        "https://fal.ai/api/openapi/queue/openapi.json; the simulator's is "
        "<simulator>/fal/openapi/queue/openapi.json).",
    )
    fal_jwks_url: str | None = Field(
        default=None,
        description="Where fal publishes its webhook keys (default fal's own JWKS; the "
        "simulator's is <simulator>/fal/.well-known/jwks.json).",
    )
    replicate_poll_interval: float = Field(
        default=2.0, gt=0, le=60, description="Seconds between polls of a Replicate prediction."
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Prices by 'provider/model' or 'provider' (JSON in the environment); they "
        "win over the model catalogue's, which wins over each provider's default.",
    )
    provider_limits: dict[str, ProviderLimit] = Field(
        default_factory=dict,
        description="Per provider: server-enforced starts per second, per-worker concurrency "
        "(each provider's default from the registry, storyreel/providers.py).",
    )
    replicate_api_token: SecretStr | None = Field(
        default=None, validation_alias="REPLICATE_API_TOKEN", description="Replicate API token."
    )
    replicate_base_url: str | None = Field(
        default=None,
        validation_alias="REPLICATE_BASE_URL",
        description="Replicate's API root (default https://api.replicate.com).",
    )
    fal_key: SecretStr | None = Field(
        default=None, validation_alias="FAL_KEY", description="fal API key."
    )
    runware_api_key: SecretStr | None = Field(
        default=None, validation_alias="RUNWARE_API_KEY", description="Runware API key."
    )
    runware_base_url: str | None = Field(
        default=None, description="Runware's API (default https://api.runware.ai/v1)."
    )
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias="GEMINI_API_KEY", description="Gemini API key (Veo)."
    )
    veo_base_url: str | None = Field(
        default=None,
        description="The Gemini API's root (default https://generativelanguage.googleapis.com).",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="Where the CLI reaches the API."
    )
    ffmpeg_threads: int = Field(default=2, ge=0, description="Threads per FFmpeg encode.")
    ffmpeg_preset: Preset = Field(
        default=DEFAULT_PRESET,
        description="x264 preset of every encode: ultrafast takes about half the CPU of "
        "veryfast for larger files, medium makes smaller files slower. Every preset stays "
        "H.264 High.",
    )
    overlay_parallel: bool = Field(
        default=True,
        description="Caption clips in parallel (bounded by cores); false = one by one.",
    )
    overlay_max_workers: int = Field(
        default=0, ge=0, description="Most clips captioned at once; 0 = one per core."
    )
    tts_provider: Literal["silent", "espeak", "openai"] = Field(
        default="espeak",
        description="Narration voice: local espeak-ng (a silent track, and a warning on the run, "
        "when it is not installed), a silent track, or an OpenAI-compatible speech endpoint at "
        "tts_url.",
    )
    tts_url: str | None = Field(
        default=None,
        description="Root of the OpenAI-compatible speech server (tts_provider=openai).",
    )
    tts_api_key: SecretStr | None = Field(default=None, description="Bearer key of the TTS server.")
    tts_model: str = Field(default="tts-1", description="Model name sent to the TTS server.")
    tts_voice: str | None = Field(
        default=None, description="Default voice ('alloy' for openai, 'en' for espeak)."
    )
    # The assembly activity is silent during one TTS call: this must stay below its heartbeat
    # timeout (workflows/policies.py STITCH_HEARTBEAT, 60 s).
    tts_timeout_seconds: float = Field(
        default=30, gt=0, le=45, description="Most seconds one scene's speech may take."
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible chat-completions endpoint of planner 'llm', ending in /v1 "
        "(https://api.openai.com/v1, https://openrouter.ai/api/v1, http://localhost:11434/v1).",
    )
    llm_model: str | None = Field(default=None, description="Chat model of planner 'llm'.")
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer key of the chat endpoint (worker only; never logged)."
    )
    music_volume: float = Field(
        default=0.35, ge=0, le=2, description="Gain of the music bed before ducking (1 = as is)."
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Worker: Prometheus metrics port; empty = off."
    )
    temporal_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Worker: Temporal SDK metrics (Prometheus) port; empty = off.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Worker log lines: text for terminals, json (one object per line, with "
        "generation_id and clip_id) for log collectors.",
    )
    worker_build_id: str | None = Field(
        default=None,
        description="Worker Versioning build id (e.g. the image tag); empty = unversioned.",
    )
    # Other tools' standard variables, read here under their own names: one place says what
    # configures storyreel, and a test (tests/storyreel/test_settings.py) finds raw reads.
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL",
        description="S3 storage: a self-hosted S3's endpoint (MinIO, moto); empty = AWS itself.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OpenTelemetry collector (OTLP); set = trace every generation.",
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        description="OpenTelemetry: a collector for traces alone; set = trace.",
    )
    otel_traces_exporter: str | None = Field(
        default=None,
        validation_alias="OTEL_TRACES_EXPORTER",
        description="OpenTelemetry: otlp, console, or none (tracing off whatever else is set).",
    )
    otel_exporter_otlp_protocol: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL",
        description="OpenTelemetry: grpc (default) or http/protobuf.",
    )
    otel_sdk_disabled: bool = Field(
        default=False,
        validation_alias="OTEL_SDK_DISABLED",
        description="OpenTelemetry: true = tracing off, whatever else is set.",
    )
    otel_service_name: str | None = Field(
        default=None,
        validation_alias="OTEL_SERVICE_NAME",
        description="OpenTelemetry: the service name on spans (default storyreel).",
    )
    otel_resource_attributes: str | None = Field(
        default=None,
        validation_alias="OTEL_RESOURCE_ATTRIBUTES",
        description="OpenTelemetry: key=value,... resource attributes on spans.",
    )
    # The image's process plumbing (deploy/entrypoint.sh reads the same), for its healthcheck.
    role_file: Path = Field(
        default=Path("/tmp/storyreel-role"),
        validation_alias="ROLE_FILE",
        description="Container: where the entrypoint notes the role it started.",
    )
    api_port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias="PORT",
        description="Container: the API role's port.",
    )
    simulator_port: int = Field(
        default=8090,
        ge=1,
        le=65535,
        validation_alias="SIMULATOR_PORT",
        description="Container: the simulator role's port.",
    )

    @field_validator(
        "tts_url", "tts_api_key", "tts_voice", "metrics_port", "temporal_metrics_port",
        "worker_build_id", "llm_base_url", "llm_model", "llm_api_key", "ffmpeg_path",
        "font_file", "simulator_url", "storage_url", "database_url", "api_key", "public_url",
        "replicate_webhook_signing_secret", "fal_queue_url", "fal_jwks_url", "fal_schema_url",
        "replicate_api_token", "replicate_base_url", "fal_key", "runware_api_key",
        "runware_base_url", "gemini_api_key", "veo_base_url", "aws_endpoint_url",
        "otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint",
        "otel_traces_exporter", "otel_exporter_otlp_protocol", "otel_service_name",
        "otel_resource_attributes", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty variable (``FOO=`` in .env, an empty ConfigMap value) means unset."""
        return None if value == "" else value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable that sets ``field``: its own name (``FAL_KEY``), else the prefixed one."""
        alias = cls.model_fields[field].validation_alias
        return str(alias) if alias else f"STORYREEL_{field.upper()}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def api_key_file(self) -> Path:
        """Where 'storyreel up' keeps the local user's key (mode 0600)."""
        return self.data_dir / "api-key"

    @property
    def webhook_base(self) -> str | None:
        """The base URL of the webhook routes providers call, when webhooks are on."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + "/v1/webhooks"

    def clip_task_queue(self, provider: str) -> str:
        return f"{self.clip_task_queue_prefix}-{provider}"

    def price(self, provider: str, model: str) -> Price:
        """A clip's price: this table's entry for the model, else the catalogue's, else this
        table's for the provider, else the provider's default."""
        if (entry := self.prices.get(f"{provider}/{model}")) is not None:
            return entry
        from storyreel.catalogue import lookup  # the catalogue prices with this module's Price

        spec = lookup(provider, model)
        if spec is not None and spec.price is not None:
            return spec.price
        if (entry := self.prices.get(provider)) is not None:
            return entry
        registered = PROVIDERS.get(provider)
        return registered.price if registered is not None else Price()

    def provider_limit(self, provider: str) -> ProviderLimit:
        if (limit := self.provider_limits.get(provider)) is not None:
            return limit
        registered = PROVIDERS.get(provider)
        return registered.limit if registered is not None else ProviderLimit()

    def executor_size(self) -> int:
        return self.executor_workers or max(4, (os.cpu_count() or 1) * 4)


@lru_cache
def get_settings() -> Settings:
    return Settings()
