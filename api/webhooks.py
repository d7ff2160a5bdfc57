"""``POST /v1/webhooks/{provider}``: providers calling back about a clip's prediction.

The route is public (providers hold no API key): each delivery is authenticated by the
provider's own signature, checked on the raw body before anything reads it
(:class:`api.deliveries.Deliveries` verifies it and turns it into a signal or a progress row).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deliveries import Outcome
from api.deps import DeliveriesDep
from api.responses import answers
from storyreel.webhooks.base import WebhookRejectedError

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class DeliveryAnswer(BaseModel):
    status: Outcome
    """``accepted`` (acted on), ``duplicate`` (acted on before) or ``ignored`` (run gone)."""


@router.post(
    "/{provider}",
    response_model=DeliveryAnswer,
    responses=answers(
        {
            400: "Malformed or stale delivery.",
            401: "Missing or wrong signature.",
            404: "This API takes no calls from that provider.",
            413: "The delivery is larger than 1 MiB.",
            503: "Temporal or the database is unavailable: deliver again.",
        }
    ),
)
async def deliver(
    provider: str,
    request: Request,
    deliveries: DeliveriesDep,
    generation: Annotated[str, Query(max_length=100, description="The run the clip is in.")],
    clip: Annotated[int, Query(ge=1, le=10_000, description="The clip (1-based).")],
) -> DeliveryAnswer | JSONResponse:
    """A provider's call about one clip's prediction, authenticated by its signature."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        outcome = await deliveries.receive(
            provider, headers, await request.body(), generation, clip
        )
    except WebhookRejectedError as error:
        return JSONResponse({"detail": str(error)}, status_code=error.status_code)
    return DeliveryAnswer(status=outcome)
