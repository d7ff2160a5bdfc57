"""Dependencies (HTTP and WebSocket): what the lifespan opened once, typed for routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends
from starlette.requests import HTTPConnection

from api.assets import Uploads
from api.batches import Batches
from api.deliveries import Deliveries
from api.notify import Notifications
from api.service import Generations
from storyreel.db import Records
from storyreel.settings import Settings

T = TypeVar("T")


def app_state(name: str, _kind: type[T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A dependency answering ``app.state.<name>`` (set by the lifespan), typed as ``_kind``."""

    async def dependency(connection: HTTPConnection) -> T:
        value: T = getattr(connection.app.state, name)
        return value

    dependency.__name__ = f"get_{name}"
    return dependency


DeliveriesDep = Annotated[Deliveries, Depends(app_state("deliveries", Deliveries))]
BatchesDep = Annotated[Batches, Depends(app_state("batches", Batches))]
RecordsDep = Annotated[Records, Depends(app_state("records", Records))]
SettingsDep = Annotated[Settings, Depends(app_state("settings", Settings))]
GenerationsDep = Annotated[Generations, Depends(app_state("generations", Generations))]
NotificationsDep = Annotated[Notifications, Depends(app_state("notifications", Notifications))]
UploadsDep = Annotated[Uploads, Depends(app_state("uploads", Uploads))]
