"""Configuration: every knob is an environment variable with the ``STORYREEL_`` prefix."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings. Workflows never read these: values reach them in their input."""

    model_config = SettingsConfigDict(env_prefix="STORYREEL_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".storyreel"), description="Root of local media, records and server state."
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
    retry_window_seconds: int = Field(
        default=24 * 3600, ge=1, description="How long a run waits in awaiting_retry."
    )
    executor_workers: int = Field(
        default=0, ge=0, description="Threads for blocking FFmpeg work; 0 = sized to the machine."
    )
    ffmpeg_path: str | None = Field(
        default=None, description="FFmpeg binary; default is the one shipped by imageio-ffmpeg."
    )
    font_file: Path | None = Field(
        default=None, description="TrueType font for drawn text; default Roboto from font-roboto."
    )
    heartbeat_throttle_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Most time between heartbeats sent to Temporal: how live clip progress is.",
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="Where the CLI reaches the API."
    )
    ffmpeg_threads: int = Field(default=2, ge=0, description="Threads per FFmpeg encode.")

    @field_validator("ffmpeg_path", "font_file", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def clip_task_queue(self, provider: str) -> str:
        return f"{self.clip_task_queue_prefix}-{provider}"

    def executor_size(self) -> int:
        return self.executor_workers or max(4, (os.cpu_count() or 1) * 4)


@lru_cache
def get_settings() -> Settings:
    return Settings()
