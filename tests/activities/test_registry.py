"""The provider registry is the one list of providers: a worker built from the environment
alone serves every provider whose key is set, and each of them reaches its own API with its
own key. (fal once went missing from the worker because a provider was wired in six places.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from activities.providers import registry
from activities.providers.base import DescribesModels
from activities.providers.fal import FalClipProvider
from activities.providers.replicate import ReplicateClipProvider
from activities.providers.runware import RunwareClipProvider
from activities.providers.veo import VeoClipProvider
from storyreel.providers import PROVIDERS
from storyreel.settings import Settings
from worker import default_queues, open_providers

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "replicate": "REPLICATE_API_TOKEN",
    "fal": "FAL_KEY",
    "runware": "RUNWARE_API_KEY",
    "veo": "GEMINI_API_KEY",
}
PROVIDER_VARIABLES = {name for spec in PROVIDERS.values() for name, _ in spec.env}


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No provider configured, whatever the machine's environment holds."""
    for name in {*PROVIDER_VARIABLES, "STORYREEL_SIMULATOR_URL", "STORYREEL_PRICES"}:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_with_no_key_a_worker_serves_local_clips_only(bare_env: pytest.MonkeyPatch) -> None:
    assert default_queues(Settings(_env_file=None)) == ["workflows", "media", "clips:local"]


@pytest.mark.parametrize("name", sorted(KEYS))
def test_one_key_in_the_environment_adds_that_providers_clip_queue(
    bare_env: pytest.MonkeyPatch, name: str
) -> None:
    bare_env.setenv(KEYS[name], "secret-key")
    assert default_queues(Settings(_env_file=None)) == [
        "workflows",
        "media",
        "clips:local",
        f"clips:{name}",
    ]


def test_a_fal_queue_url_alone_switches_fal_on(bare_env: pytest.MonkeyPatch) -> None:
    """The embedded stack points fal at its simulator without a key."""
    bare_env.setenv("STORYREEL_FAL_QUEUE_URL", "http://127.0.0.1:9/fal")
    assert "clips:fal" in default_queues(Settings(_env_file=None))


async def test_each_provider_is_built_with_its_own_key_and_base_url(
    bare_env: pytest.MonkeyPatch,
) -> None:
    for name, variable in KEYS.items():
        bare_env.setenv(variable, f"{name}-key")
    bare_env.setenv("REPLICATE_BASE_URL", "http://127.0.0.1:9/replicate")
    bare_env.setenv("STORYREEL_FAL_QUEUE_URL", "http://127.0.0.1:9/fal")
    bare_env.setenv("STORYREEL_RUNWARE_BASE_URL", "http://127.0.0.1:9/runware/v1")
    bare_env.setenv("STORYREEL_VEO_BASE_URL", "http://127.0.0.1:9/veo")
    settings = Settings(_env_file=None)
    with ThreadPoolExecutor(1) as executor:
        async with open_providers(settings, executor) as (clips, images):
            assert sorted(clips) == ["fal", "local", "replicate", "runware", "veo"]
            assert sorted(images) == ["local", "replicate"]
            replicate = clips["replicate"]
            fal, runware, veo = clips["fal"], clips["runware"], clips["veo"]
            assert isinstance(replicate, ReplicateClipProvider)
            assert isinstance(fal, FalClipProvider)
            assert isinstance(runware, RunwareClipProvider)
            assert isinstance(veo, VeoClipProvider)
            clients = {
                "replicate": replicate.client,
                "fal": fal.client,
                "runware": runware.client,
                "veo": veo.client,
            }
            assert {name: client.base_url for name, client in clients.items()} == {
                "replicate": "http://127.0.0.1:9/replicate",
                "fal": "http://127.0.0.1:9/fal",
                "runware": "http://127.0.0.1:9/runware/v1",
                "veo": "http://127.0.0.1:9/veo",
            }
            for name, client in clients.items():
                # Each client sends its own provider's key, and never shows it.
                assert f"{name}-key" in str(client._auth_headers()), name  # noqa: SLF001
                assert f"{name}-key" not in repr(client)


async def test_the_registry_says_which_providers_describe_models(
    bare_env: pytest.MonkeyPatch,
) -> None:
    """``describes_models`` is what the starter reads to have a run on an unlisted model read
    before its clips; it holds exactly where the adapter can read a model's schema."""
    for name, variable in KEYS.items():
        bare_env.setenv(variable, f"{name}-key")
    bare_env.setenv("STORYREEL_SIMULATOR_URL", "http://127.0.0.1:9")
    with ThreadPoolExecutor(1) as executor:
        async with open_providers(Settings(_env_file=None), executor) as (clips, _images):
            assert sorted(clips) == sorted(PROVIDERS)
            describing = {name for name, clip in clips.items() if isinstance(clip, DescribesModels)}
    assert describing == {"simulator", "replicate", "fal"}
    assert describing == {name for name, spec in PROVIDERS.items() if spec.describes_models}


def test_every_factory_the_registry_names_exists() -> None:
    with ThreadPoolExecutor(1) as executor:
        for spec in PROVIDERS.values():
            module, _, function = spec.factory.partition(":")
            assert module == registry.__name__ and callable(getattr(registry, function)), spec
        built = registry.build(PROVIDERS["local"], Settings(_env_file=None), executor)
        assert built.images is not None


def test_env_example_lists_every_providers_variables() -> None:
    example = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0].lstrip("# ") for line in example.splitlines() if "=" in line}
    assert PROVIDER_VARIABLES - names == set()
