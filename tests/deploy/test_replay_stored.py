"""Every stored history replays against the current ``VideoGenerationWorkflow``.

The files in tests/workflows/histories/ were recorded by deploy/record_histories.py from the
workflow code of earlier commits (their names say which). A generation that started on that
code and is still running (awaiting a retry for up to a day, say) is replayed by the new
workers after a deploy; if the new code would issue different commands, that generation
breaks. This test fails first, naming the history: make the change behind
``workflow.patched("<change-id>")`` (deploy/README.md, "Upgrading"), keep the old files and
record new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from storyreel.contracts import WORKFLOW_NAME
from workflows.generation import VideoGenerationWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "workflows" / "histories"
STORED = sorted(HISTORIES.glob("*.json"))


def test_there_are_stored_histories_of_every_kind() -> None:
    kinds = {path.stem.partition("@")[0] for path in STORED}
    assert {
        "scripted-captions-narration",
        "plain-scenes",
        "retry-after-failure",
        "finish-without-failed",
        "cancelled-while-rendering",
    } <= kinds, f"missing histories in {HISTORIES}: run deploy/record_histories.py"


async def replay(name: str, text: str) -> BaseException | None:
    history = WorkflowHistory.from_json(name, text)
    replayer = Replayer(workflows=[VideoGenerationWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


@pytest.mark.parametrize("path", STORED, ids=[path.stem for path in STORED])
async def test_stored_history_replays(path: Path) -> None:
    text = path.read_text()
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["workflowType"]["name"] == WORKFLOW_NAME, f"{path.name} is not a generation"
    failure = await replay(path.stem, text)
    if failure is not None:
        pytest.fail(
            f"{path.name} (recorded from older workflow code) no longer replays against the "
            f"current VideoGenerationWorkflow: {failure!r}. Running generations "
            "of that shape would break on deploy: guard the change with "
            'workflow.patched("<change-id>") (see deploy/README.md, "Upgrading").',
            pytrace=False,
        )


async def test_a_history_the_code_would_not_reproduce_is_caught() -> None:
    """The check has teeth: a history whose first activity the current code never schedules
    (as after a renamed or removed activity) does not replay."""
    path = next(p for p in STORED if p.stem.startswith("plain-scenes@"))
    history = json.loads(path.read_text())
    scheduled = next(
        event["activityTaskScheduledEventAttributes"]
        for event in history["events"]
        if "activityTaskScheduledEventAttributes" in event
    )
    scheduled["activityType"]["name"] += "_v0"
    failure = await replay(path.stem, json.dumps(history))
    assert failure is not None and "nondeterminism" in repr(failure).lower()
