"""How a worker builds each provider of the registry (``storyreel/providers.py``) from settings.

Every function here is named by one ``ProviderSpec.factory``; the worker imports the one a
spec names, so a provider is declared in the registry and built here, nowhere else.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from activities.providers.base import ClipProvider, ImageProvider
from activities.providers.fal import FalClipProvider
from activities.providers.fal_api import DEFAULT_SCHEMA_URL, FalClient
from activities.providers.local import LocalClipProvider, LocalImageProvider
from activities.providers.replicate import ReplicateClipProvider, ReplicateImageProvider
from activities.providers.replicate_api import ReplicateClient
from activities.providers.runware import RunwareClipProvider
from activities.providers.runware_api import RunwareClient
from activities.providers.veo import VeoClipProvider
from activities.providers.veo_api import VeoClient
from storyreel.providers import ProviderSpec
from storyreel.settings import Settings


@dataclass
class Built:
    """A provider as a worker holds it: its clips, its storyboard images (if it draws them)
    and what to close when the worker stops."""

    clips: ClipProvider
    images: ImageProvider | None = None
    close: Callable[[], Awaitable[None]] | None = None


Factory = Callable[[ProviderSpec, Settings, Executor], Built]


def build(spec: ProviderSpec, settings: Settings, executor: Executor) -> Built:
    """The provider ``spec`` declares, built by the factory it names."""
    module, _, name = spec.factory.partition(":")
    factory: Factory = getattr(importlib.import_module(module), name)
    return factory(spec, settings, executor)


def poll_seconds(settings: Settings, default: float) -> float:
    """Seconds between status reads: the setting when given, else the provider's own pace."""
    if "replicate_poll_interval" in settings.model_fields_set:
        return settings.replicate_poll_interval
    return default


def local(_spec: ProviderSpec, settings: Settings, executor: Executor) -> Built:
    return Built(
        LocalClipProvider(
            settings.font_file,
            settings.ffmpeg_path,
            settings.ffmpeg_threads,
            executor,
            settings.ffmpeg_preset,
        ),
        LocalImageProvider(settings.font_file, settings.ffmpeg_path, executor),
    )


def replicate(spec: ProviderSpec, settings: Settings, _executor: Executor) -> Built:
    """Replicate, or a double speaking its protocol (the simulator)."""
    client = ReplicateClient(
        spec.base_url(settings), spec.key(settings), poll_interval=settings.replicate_poll_interval
    )
    clips = ReplicateClipProvider(client, provider=spec.name)
    return Built(clips, ReplicateImageProvider(client), client.aclose)


def fal(spec: ProviderSpec, settings: Settings, _executor: Executor) -> Built:
    client = FalClient(
        spec.base_url(settings),
        spec.key(settings),
        poll_interval=settings.replicate_poll_interval,
        schema_url=settings.fal_schema_url or DEFAULT_SCHEMA_URL,
    )
    return Built(FalClipProvider(client), close=client.aclose)


def runware(spec: ProviderSpec, settings: Settings, _executor: Executor) -> Built:
    client = RunwareClient(
        spec.key(settings), spec.base_url(settings), poll_interval=poll_seconds(settings, 5.0)
    )
    return Built(RunwareClipProvider(client), close=client.aclose)


def veo(spec: ProviderSpec, settings: Settings, _executor: Executor) -> Built:
    client = VeoClient(
        spec.key(settings), spec.base_url(settings), poll_interval=poll_seconds(settings, 10.0)
    )
    return Built(VeoClipProvider(client), close=client.aclose)
