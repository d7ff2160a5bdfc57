"""Dependencies (HTTP and WebSocket): what the lifespan opened once, typed for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection
from temporalio.client import Client

from api.batches import Batches
from api.service import Generations
from storyreel.db import Records
from storyreel.settings import Settings
from storyreel.storage import Storage


async def get_client(connection: HTTPConnection) -> Client:
    client: Client = connection.app.state.client
    return client


async def get_settings_dep(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


async def get_storage(connection: HTTPConnection) -> Storage:
    storage: Storage = connection.app.state.storage
    return storage


async def get_generations(connection: HTTPConnection) -> Generations:
    generations: Generations = connection.app.state.generations
    return generations


async def get_records(connection: HTTPConnection) -> Records:
    records: Records = connection.app.state.records
    return records


async def get_batches(connection: HTTPConnection) -> Batches:
    batches: Batches = connection.app.state.batches
    return batches


BatchesDep = Annotated[Batches, Depends(get_batches)]
RecordsDep = Annotated[Records, Depends(get_records)]
TemporalDep = Annotated[Client, Depends(get_client)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StorageDep = Annotated[Storage, Depends(get_storage)]
GenerationsDep = Annotated[Generations, Depends(get_generations)]
