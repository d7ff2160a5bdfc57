"""A local OpenAI-compatible chat-completions server (FastAPI on uvicorn) for planner tests.

It answers ``POST /v1/chat/completions`` with the scripted contents in order (the last one
repeats) and keeps every request it got, headers included, for the test to inspect.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from storyreel.stack import free_port


@dataclass
class FakeLLM:
    answers: list[str]
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> dict[str, Any]:
            self.requests.append(await request.json())
            self.authorizations.append(request.headers.get("authorization"))
            content = self.answers[min(len(self.requests), len(self.answers)) - 1]
            return {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "model": self.requests[-1].get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content, "refusal": None},
                    }
                ],
            }

        return app


def plan_json(count: int = 2, context: str = "Ink wash, grey dawn light") -> str:
    return json.dumps(
        {
            "consistency_context": context,
            "scenes": [
                {
                    "description": f"CAMERA-{n}: a lighthouse keeper in a yellow coat climbs "
                    f"spiral iron stairs, seen from below",
                    "narration": f"She climbs the stairs, step {n}.",
                    "caption": f"Step {n}",
                    "duration": 2.5,
                }
                for n in range(1, count + 1)
            ],
        }
    )


@asynccontextmanager
async def serve_llm(*answers: str) -> AsyncIterator[FakeLLM]:
    fake = FakeLLM(list(answers))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the fake LLM server did not start"
    fake.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
