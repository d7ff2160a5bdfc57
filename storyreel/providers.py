"""The provider registry: every clip provider declared once.

A provider is a name, the settings that switch it on (its key, or a base URL pointing at a
double of it), how a worker builds its client (``factory``, a dotted path the worker imports:
the kernel imports no role), whether it calls back and which signature its webhooks carry,
its default limits and price, and where the embedded stack's simulator speaks its protocol.
The worker's default queues, the API's accepted names, the webhook route's verifiers,
``storyreel up`` and ``.env.example`` all read this table; nothing else lists providers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict

from pydantic import BaseModel, Field, SecretStr
from typing_extensions import Unpack

if TYPE_CHECKING:
    from storyreel.settings import Settings


class Price(BaseModel):
    """What a provider charges for one clip: per second of output video, per second of compute,
    or a fixed price per clip length (``per_clip``: ``{"5": 1.40, "10": 2.80}``); clips with the
    model's own sound may cost ``per_second_audio`` instead of ``per_second``."""

    per_second: float = Field(default=0.0, ge=0)
    per_predict_second: float = Field(default=0.0, ge=0)
    per_clip: dict[str, float] = Field(
        default_factory=dict, description="Price of one clip by its length in seconds ('5')."
    )
    per_second_audio: float | None = Field(
        default=None, ge=0, description="Per second of video when the clip has sound."
    )

    def cost(
        self, video_seconds: float, predict_seconds: float | None = None, audio: bool = False
    ) -> float:
        """What a clip of ``video_seconds`` (its billed length) costs."""
        compute = predict_seconds if predict_seconds is not None else video_seconds
        per_second = self.per_second
        if audio and self.per_second_audio is not None:
            per_second = self.per_second_audio
        flat = self._clip_price(video_seconds)
        return round(flat + per_second * video_seconds + self.per_predict_second * compute, 6)

    def _clip_price(self, seconds: float) -> float:
        if not self.per_clip:
            return 0.0
        lengths = sorted((float(length), price) for length, price in self.per_clip.items())
        # The price of the shortest listed length that covers the clip (else the longest).
        return next((p for length, p in lengths if length + 1e-3 >= seconds), lengths[-1][1])


class ProviderLimit(BaseModel):
    """Limits that hold across every generation and worker process for one provider.

    ``activities_per_second`` is enforced by the Temporal server on the provider's clip queue
    (all workers together); ``max_concurrent`` caps clip activities per worker process.
    """

    activities_per_second: float | None = Field(default=None, gt=0)
    max_concurrent: int = Field(default=20, ge=1)


Verifier = Literal["replicate", "fal"]


@dataclass(frozen=True)
class ProviderSpec:
    """One clip provider, as every part of storyreel knows it."""

    name: str
    title: str
    factory: str
    """``module:function`` building the worker's provider from settings (see worker.py)."""
    enabled_by: tuple[str, ...]
    """Settings any one of which, set, switches the provider on in a worker."""
    hint: str
    """What to set, for messages (``set FAL_KEY``)."""
    key_setting: str | None = None
    """The setting holding the provider's API key (a secret)."""
    fixed_key: str | None = None
    """The key of a double that takes any (the simulator's), when there is no key setting."""
    signing_secret_setting: str | None = None
    """The setting holding its webhook signing secret, when it is configured, not fetched."""
    base_url_setting: str | None = None
    default_base_url: str | None = None
    protocol: str = ""
    """Whose protocol and model names it speaks (the simulator: Replicate's)."""
    verifier: Verifier | None = None
    """The signature its webhook deliveries carry; None: it never calls back."""
    describes_models: bool = False
    """Whether it publishes each model's input schema (its adapter is ``DescribesModels``): a
    model outside the catalogue is read from there, and its run quoted from that before the
    first clip."""
    limit: ProviderLimit = field(default_factory=ProviderLimit)
    price: Price = field(default_factory=Price)
    """Per second when neither ``STORYREEL_PRICES`` nor the model catalogue prices a model."""
    simulator_env: tuple[tuple[str, str], ...] = ()
    """The variables that point it at the embedded simulator (``storyreel up``), each with its
    value there, in which ``{simulator}`` stands for the simulator's URL."""
    env: tuple[tuple[str, str], ...] = ()
    """Its variables and what each is, for ``.env.example``."""

    def simulated(self, simulator: str) -> dict[str, str]:
        """The environment that points it at the simulator serving at ``simulator``."""
        return {name: value.format(simulator=simulator) for name, value in self.simulator_env}

    def enabled(self, settings: Settings) -> bool:
        return any(_is_set(getattr(settings, name)) for name in self.enabled_by)

    def key(self, settings: Settings) -> str | None:
        if self.key_setting is None:
            return self.fixed_key
        value = getattr(settings, self.key_setting)
        if isinstance(value, SecretStr):
            return value.get_secret_value() or None
        return str(value) if value else None

    def signing_secret(self, settings: Settings) -> str | None:
        if self.signing_secret_setting is None:
            return None
        value = getattr(settings, self.signing_secret_setting)
        return value.get_secret_value() if isinstance(value, SecretStr) else None

    def base_url(self, settings: Settings) -> str:
        configured = getattr(settings, self.base_url_setting) if self.base_url_setting else None
        url = configured or self.default_base_url
        if not url:
            raise ValueError(f"provider {self.name!r} has no base URL")
        return str(url)

    def configured_by(self, settings: Settings) -> bool:
        """Whether the configuration (the environment, or .env) itself sets this provider up
        (then ``storyreel up`` leaves it alone instead of pointing it at the simulator)."""
        names = {name for name, _ in self.env if not name.endswith(_PUBLIC_URLS)}
        return any(
            _is_set(getattr(settings, field))
            for field in type(settings).model_fields
            if settings.env_name(field) in names
        )


# Where a provider publishes public documents: set alone, they do not configure it.
_PUBLIC_URLS = ("JWKS_URL", "SCHEMA_URL")


def _is_set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


@dataclass(frozen=True)
class _Setting:
    """One of a hosted provider's settings: its field, its variable, what it is."""

    field: str
    variable: str
    about: str


class _Extras(TypedDict, total=False):
    """What only some hosted providers declare: ``ProviderSpec``'s fields of the same names."""

    signing_secret_setting: str
    verifier: Verifier
    describes_models: bool


def _hosted(
    name: str,
    title: str,
    *,
    key: _Setting,
    base_url: _Setting,
    default_base_url: str,
    limit: ProviderLimit,
    price: Price,
    simulator_path: str,
    simulator_key: str | None = "simulated",
    base_url_enables: bool = False,
    more_env: tuple[tuple[str, str, str], ...] = (),
    **extras: Unpack[_Extras],
) -> ProviderSpec:
    """A provider's own hosted API, reached with its account key at a base URL that can point at
    a double: it speaks its own protocol, its worker factory bears its name, its key switches it
    on (``base_url_enables``: its base URL too, for a double that takes no key) and its
    variables, key then base URL, go to ``.env.example``. On the embedded stack its base URL is
    ``simulator_path`` on the simulator and its key ``simulator_key`` (None: it takes none there);
    ``more_env`` is its other variables: each with what it is and its path on the simulator."""
    enabled_by: tuple[str, ...] = (key.field,)
    hint = f"set {key.variable}"
    if base_url_enables:
        enabled_by, hint = (key.field, base_url.field), f"{hint} (or {base_url.variable})"
    return ProviderSpec(
        name=name,
        title=title,
        factory=f"activities.providers.registry:{name}",
        enabled_by=enabled_by,
        hint=hint,
        key_setting=key.field,
        base_url_setting=base_url.field,
        default_base_url=default_base_url,
        protocol=name,
        limit=limit,
        price=price,
        simulator_env=(
            (base_url.variable, "{simulator}" + simulator_path),
            *(((key.variable, simulator_key),) if simulator_key else ()),
            *((variable, "{simulator}" + path) for variable, _, path in more_env),
        ),
        env=(
            (key.variable, key.about),
            (base_url.variable, f"{base_url.about} (default {default_base_url})"),
            *((variable, about) for variable, about, _ in more_env),
        ),
        **extras,
    )


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            name="local",
            title="local FFmpeg renders (no account, no network)",
            factory="activities.providers.registry:local",
            enabled_by=(),
            hint="always available",
            limit=ProviderLimit(max_concurrent=8),
        ),
        ProviderSpec(
            name="simulator",
            title="the Replicate-protocol simulator (storyreel simulator)",
            factory="activities.providers.registry:replicate",
            enabled_by=("simulator_url",),
            hint="set STORYREEL_SIMULATOR_URL",
            base_url_setting="simulator_url",
            fixed_key="simulator",
            protocol="replicate",
            verifier="replicate",
            describes_models=True,
            limit=ProviderLimit(max_concurrent=100),
            price=Price(per_second=0.05),
        ),
        _hosted(
            "replicate",
            "Replicate predictions",
            key=_Setting(
                "replicate_api_token", "REPLICATE_API_TOKEN", "Replicate API token (r8_...)"
            ),
            base_url=_Setting("replicate_base_url", "REPLICATE_BASE_URL", "Replicate's API root"),
            default_base_url="https://api.replicate.com",
            signing_secret_setting="replicate_webhook_signing_secret",
            verifier="replicate",
            describes_models=True,
            # Replicate allows 600 prediction creates per minute per account: 10/s. Leave
            # headroom for retried creates.
            limit=ProviderLimit(activities_per_second=9, max_concurrent=50),
            price=Price(per_second=0.10),
            # Replicate's models on the simulator, which enforces their published input schemas.
            simulator_path="",
            simulator_key="r8_simulated",
        ),
        _hosted(
            "fal",
            "fal's queue API",
            key=_Setting("fal_key", "FAL_KEY", "fal API key"),
            base_url=_Setting("fal_queue_url", "STORYREEL_FAL_QUEUE_URL", "fal's queue API"),
            default_base_url="https://queue.fal.run",
            base_url_enables=True,
            verifier="fal",
            describes_models=True,
            limit=ProviderLimit(max_concurrent=50),
            price=Price(per_second=0.10),
            simulator_path="/fal",
            simulator_key=None,
            more_env=(
                (
                    "STORYREEL_FAL_JWKS_URL",
                    "where fal publishes its webhook keys",
                    "/fal/.well-known/jwks.json",
                ),
                (
                    "STORYREEL_FAL_SCHEMA_URL",
                    "where fal publishes each endpoint's schema",
                    "/fal/openapi/queue/openapi.json",
                ),
            ),
        ),
        _hosted(
            "runware",
            "Runware tasks",
            key=_Setting("runware_api_key", "RUNWARE_API_KEY", "Runware API key"),
            base_url=_Setting("runware_base_url", "STORYREEL_RUNWARE_BASE_URL", "Runware's API"),
            default_base_url="https://api.runware.ai/v1",
            limit=ProviderLimit(max_concurrent=50),
            price=Price(per_second=0.08),
            simulator_path="/runware/v1",
        ),
        _hosted(
            "veo",
            "Veo on the Gemini API",
            key=_Setting("gemini_api_key", "GEMINI_API_KEY", "Gemini API key (Veo)"),
            base_url=_Setting("veo_base_url", "STORYREEL_VEO_BASE_URL", "the Gemini API's root"),
            default_base_url="https://generativelanguage.googleapis.com",
            # The Gemini API allows few Veo requests per minute on most tiers.
            limit=ProviderLimit(activities_per_second=0.15, max_concurrent=10),
            price=Price(per_second=0.40),
            simulator_path="/veo",
        ),
    )
}


def provider(name: str) -> ProviderSpec | None:
    return PROVIDERS.get(name)


def enabled_providers(settings: Settings) -> list[ProviderSpec]:
    """The providers this process's settings switch on (local always)."""
    return [spec for spec in PROVIDERS.values() if not spec.enabled_by or spec.enabled(settings)]
