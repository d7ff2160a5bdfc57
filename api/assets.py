"""A user's uploads: streamed to a temporary file (memory stays flat whatever the size), read
by FFmpeg for what they are (:func:`storyreel.assets.inspect`), stored, recorded.

A request may then name an asset where it takes material: ``music`` (a sound asset), a scene's
``asset`` (a video or image shown instead of a generated clip);
:func:`api.validation.resolve_assets` swaps each id for its storage key before the run starts.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import FileTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from api.service import Service
from storyreel.assets import asset_key, inspect, is_asset_id, new_asset_id
from storyreel.db.assets import AssetPublic, AssetRow
from storyreel.errors import BadInputError, NotFoundError

log = logging.getLogger("storyreel.api")
FIELD = "file"
FEED_BYTES = 1 << 20  # the parser writes to disk in a thread, a megabyte at a time


class Uploads(Service):
    """Uploads, reads and deletes one user's assets; another user's is ``NotFoundError``."""

    async def upload(
        self, headers: dict[str, str], body: AsyncIterator[bytes], user_id: int
    ) -> AssetPublic:
        """Store the ``file`` part of a multipart body as a new asset of the caller.

        422 for a body that is not multipart with a ``file`` part, a file over
        ``STORYREEL_MAX_ASSET_BYTES`` (refused as soon as it passes the limit) and content that
        is not a picture, video or sound FFmpeg can decode.
        """
        limit = self.settings.max_asset_bytes
        work = self.settings.data_dir / "uploads"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix="upload-") as folder:
            # No extension: FFmpeg finds the format from the content, never the name.
            path = Path(folder) / "upload"
            target = FileTarget(str(path), validator=MaxSizeValidator(limit))
            try:
                parser = StreamingFormDataParser(headers=headers)
            except (ParseFailedException, KeyError, ValueError):
                raise BadInputError("body: send the file as multipart/form-data") from None
            parser.register(FIELD, target)
            try:
                await self._feed(parser, body, limit)
            finally:
                target.on_finish()  # closes the file, also when the body was refused midway
            if not path.is_file():
                raise BadInputError(f"body: no {FIELD!r} part (multipart field {FIELD!r})")
            size = path.stat().st_size
            if size == 0:
                raise BadInputError("file: empty")
            found = await asyncio.to_thread(
                inspect, path, self.settings.max_asset_seconds, self.settings.ffmpeg_path
            )
            asset_id = new_asset_id()
            key = asset_key(user_id, asset_id)
            await asyncio.to_thread(self.storage.put_file, key, path)
        name = (target.multipart_filename or "upload")[-255:]
        # What FFmpeg found (kind, duration, frame size, format) is recorded as found.
        row = AssetRow(
            id=asset_id,
            user_id=user_id,
            name=name,
            key=key,
            size_bytes=size,
            **found.model_dump(mode="json"),
        )
        log.info("asset %s (%s, %d bytes) uploaded by user %d", asset_id, found.kind, size, user_id)
        return await asyncio.to_thread(self.records.assets.add, row)

    @staticmethod
    async def _feed(
        parser: StreamingFormDataParser, body: AsyncIterator[bytes], limit: int
    ) -> None:
        pending: list[bytes] = []
        held = 0
        try:
            async for chunk in body:
                pending.append(chunk)
                held += len(chunk)
                if held >= FEED_BYTES:
                    await asyncio.to_thread(parser.data_received, b"".join(pending))
                    pending, held = [], 0
            if pending:
                await asyncio.to_thread(parser.data_received, b"".join(pending))
        except ValidationError:
            raise BadInputError(
                f"file: larger than {limit} bytes (STORYREEL_MAX_ASSET_BYTES)"
            ) from None
        except ParseFailedException:
            raise BadInputError("body: not a well-formed multipart/form-data body") from None

    async def get(self, asset_id: str, user_id: int) -> AssetRow:
        row = None
        if is_asset_id(asset_id):
            row = await asyncio.to_thread(self.records.assets.get, asset_id, user_id)
        if row is None:
            raise NotFoundError(f"no asset {asset_id!r}")
        return row

    async def list(self, user_id: int) -> list[AssetPublic]:
        return await asyncio.to_thread(self.records.assets.list, user_id)

    async def delete(self, asset_id: str, user_id: int) -> None:
        row = None
        if is_asset_id(asset_id):
            row = await asyncio.to_thread(self.records.assets.delete, asset_id, user_id)
        if row is None:
            raise NotFoundError(f"no asset {asset_id!r}")
        await asyncio.to_thread(self.storage.delete, row.key)
