"""The ``/v1/assets`` routes: a user's own pictures, videos and sound, to use in runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.auth import UserDep, owner_id
from api.deps import UploadsDep
from api.responses import answers
from storyreel.db.assets import AssetPublic, public

router = APIRouter(prefix="/v1/assets", tags=["assets"])

AssetId = Annotated[str, Path(description="The asset id from POST.", max_length=100)]

MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=AssetPublic,
    openapi_extra=MULTIPART,
    responses=answers(
        {
            422: "Not multipart with a ``file`` part, empty, larger than "
            "STORYREEL_MAX_ASSET_BYTES, longer than STORYREEL_MAX_ASSET_SECONDS, or content "
            "that is not a picture, video or sound FFmpeg can decode; the message says which."
        }
    ),
)
async def upload_asset(request: Request, user: UserDep, uploads: UploadsDep) -> AssetPublic:
    """Upload a file (multipart field ``file``), streamed to storage whatever its size. Its
    kind (image, video, audio) is found from its content, never its name or content type.
    Use its id as ``music`` (audio) or a scene's ``asset`` (video or image)."""
    headers = dict(request.headers.items())
    return await uploads.upload(headers, request.stream(), owner_id(user))


@router.get("", response_model=list[AssetPublic])
async def list_assets(user: UserDep, uploads: UploadsDep) -> list[AssetPublic]:
    """Your assets, newest first (the latest 100)."""
    return await uploads.list(owner_id(user))


@router.get("/{asset_id}", response_model=AssetPublic, responses=answers({404: "None."}))
async def get_asset(asset_id: AssetId, user: UserDep, uploads: UploadsDep) -> AssetPublic:
    """One of your assets; someone else's is 404."""
    return public(await uploads.get(asset_id, owner_id(user)))


@router.delete("/{asset_id}", status_code=204, responses=answers({404: "None."}))
async def delete_asset(asset_id: AssetId, user: UserDep, uploads: UploadsDep) -> Response:
    """Delete one of your assets and its bytes. Runs already started with it keep their copy
    of what they made from it."""
    await uploads.delete(asset_id, owner_id(user))
    return Response(status_code=204)
