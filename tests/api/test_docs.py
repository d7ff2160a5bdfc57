"""OpenAPI docs and liveness, served by the app itself."""

from __future__ import annotations

from tests.api.conftest import LiveApi


async def test_openapi_lists_every_route_and_docs_render(live_api: LiveApi) -> None:
    schema = (await live_api.http.get("/openapi.json")).json()
    assert set(schema["paths"]) >= {
        "/v1/generations",
        "/v1/generations/{generation_id}",
        "/v1/generations/{generation_id}/clips/{clip_id}/retry",
        "/v1/generations/{generation_id}/cancel",
        "/v1/generations/{generation_id}/video",
        "/v1/generations/{generation_id}/thumbnail",
        "/v1/generations/{generation_id}/finish",
        "/v1/generations/{generation_id}/storyboard/{index}",
        "/v1/session",
        "/v1/batches",
        "/v1/batches/{batch_id}",
        "/v1/batches/{batch_id}/cancel",
        "/healthz",
    }
    batch_items = schema["components"]["schemas"]["BatchBody"]["properties"]["items"]
    assert batch_items["items"] == {"$ref": "#/components/schemas/GenerationRequest"}
    post = schema["paths"]["/v1/generations"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    finish = schema["paths"]["/v1/generations/{generation_id}/finish"]["post"]
    assert "finish_without_failed" in finish["description"] and "409" in finish["responses"]
    docs = await live_api.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert (await live_api.http.get("/healthz")).json() == {"status": "ok"}
    page = await live_api.http.get("/")
    assert page.status_code == 200 and "storyreel" in page.text
