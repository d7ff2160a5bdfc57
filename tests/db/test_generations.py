"""Generations and clips: the record equals the run, however its writes arrive."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, col, select

from storyreel.contracts import (
    ClipState,
    ClipStatus,
    GenerationInput,
    GenerationState,
    GenerationStatus,
)
from storyreel.db import Records
from storyreel.db.models import Clip, Generation
from storyreel.errors import BadInputError, ConflictError, NotFoundError
from tests.db.states import milestones, request_for, simple


@pytest.fixture
def alice(records: Records) -> int:
    user = records.create_user("alice")
    assert user.id is not None
    return user.id


@pytest.fixture
def bob(records: Records) -> int:
    user = records.create_user("bob")
    assert user.id is not None
    return user.id


def _rows(records: Records, generation_id: str) -> tuple[Generation | None, list[Clip]]:
    with Session(records.engine) as session:
        row = session.get(Generation, generation_id)
        clips = session.exec(
            select(Clip).where(col(Clip.generation_id) == generation_id).order_by(col(Clip.clip_id))
        ).all()
        return row, list(clips)


def test_a_state_round_trips(records: Records, alice: int) -> None:
    for state in milestones():
        assert records.upsert_generation(state, user_id=alice, request=request_for(state.title))
        assert records.get_generation(state.generation_id, alice) == state


def test_the_final_rows_equal_the_final_state(records: Records, alice: int) -> None:
    states = milestones()
    for state in states:
        records.upsert_generation(state, user_id=alice, request=request_for(state.title))
    final = states[-1]
    row, clips = _rows(records, final.generation_id)
    assert row is not None
    assert row.request == request_for(final.title)
    assert (row.status, row.stage, row.cost, row.duration) == ("completed", "publish", 0.75, 12.0)
    assert (row.video_key, row.thumbnail_key) == (final.video_key, final.thumbnail_key)
    assert [t["stage"] for t in row.timings] == [
        "plan",
        "storyboard",
        "clips",
        "assemble",
        "publish",
    ]
    assert [(c.clip_id, c.status, c.cost, c.cached, c.attempts) for c in clips] == [
        (1, "cached", 0.0, True, 1),
        (2, "complete", 0.4, False, 1),
        (3, "complete", 0.35, False, 4),
    ]
    assert [ClipState.model_validate(c, from_attributes=True) for c in clips] == final.clips


def test_writing_the_same_state_twice_changes_nothing(records: Records, alice: int) -> None:
    state = milestones()[3]
    request = request_for(state.title)
    assert records.upsert_generation(state, user_id=alice, request=request)
    assert records.upsert_generation(state, user_id=alice, request=request)
    assert records.get_generation(state.generation_id, alice) == state
    assert len(_rows(records, state.generation_id)[1]) == 3


def test_a_stale_state_is_ignored(records: Records, alice: int) -> None:
    states = milestones()
    request = request_for(states[0].title)
    records.upsert_generation(states[4], user_id=alice, request=request)
    for older in (states[0], states[3], states[1]):
        assert not records.upsert_generation(older, user_id=alice, request=request)
    assert records.get_generation(states[0].generation_id, alice) == states[4]
    assert records.upsert_generation(states[5], user_id=alice, request=request)
    assert records.get_generation(states[0].generation_id, alice) == states[5]


def test_clips_follow_the_state(records: Records, alice: int) -> None:
    failed, retried = milestones()[3:5]
    request = request_for(failed.title)
    records.upsert_generation(failed, user_id=alice, request=request)
    clip = _rows(records, failed.generation_id)[1][2]
    assert (clip.status, clip.error, clip.attempts) == ("failed", failed.clips[2].error, 3)
    records.upsert_generation(retried, user_id=alice, request=request)
    clip = _rows(records, failed.generation_id)[1][2]
    assert (clip.status, clip.error, clip.attempts) == ("complete", None, 4)
    # A state with fewer clips (never expected) still leaves exactly its clips behind.
    shorter = retried.model_copy(deep=True)
    shorter.clips = shorter.clips[:2]
    shorter.updated_at = retried.updated_at.replace(year=2030) if retried.updated_at else None
    records.upsert_generation(shorter, user_id=alice, request=request)
    assert [c.clip_id for c in _rows(records, failed.generation_id)[1]] == [1, 2]


def test_retried_and_reordered_writes_end_at_the_final_state(records: Records, alice: int) -> None:
    """Milestone writes replayed in any order, some several times, from several threads."""
    states = milestones()
    writes = states * 3
    random.Random(1234).shuffle(writes)
    request = request_for(states[0].title)
    with ThreadPoolExecutor(6) as pool:
        done = [
            pool.submit(records.upsert_generation, state, user_id=alice, request=request)
            for state in writes
        ]
        for future in done:
            future.result(timeout=60)
    assert records.get_generation(states[0].generation_id, alice) == states[-1]


def test_another_users_generation_is_neither_read_nor_overwritten(
    records: Records, alice: int, bob: int
) -> None:
    state = milestones()[0]
    records.upsert_generation(state, user_id=alice, request=request_for(state.title))
    assert records.get_generation(state.generation_id, bob) is None
    later = milestones()[1]
    with pytest.raises(ConflictError):
        records.upsert_generation(later, user_id=bob, request=request_for(state.title))
    assert records.get_generation(state.generation_id, alice) == state
    assert records.get_generation("gen-missing", alice) is None


def test_a_generation_for_a_missing_user_is_refused(records: Records) -> None:
    with pytest.raises(NotFoundError):
        records.upsert_generation(milestones()[0], user_id=4242, request={})


def test_listing_is_newest_first_and_pages_are_exact(
    records: Records, alice: int, bob: int
) -> None:
    statuses = [GenerationStatus.completed, GenerationStatus.failed, GenerationStatus.generating]
    expected = []
    for i in range(23):
        # Pairs share a creation time: the id must break the tie the same way on every page.
        state = simple(f"gen-a{i:02d}", created=float(i // 2), status=statuses[i % 3])
        records.upsert_generation(state, user_id=alice, request={"title": state.title})
        expected.append(state)
    for i in range(4):
        records.upsert_generation(simple(f"gen-b{i}", created=100.0), user_id=bob, request={})
    expected.sort(key=lambda s: (s.created_at, s.generation_id), reverse=True)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = records.list_generations(alice, limit=5, cursor=cursor)
        seen.extend(item.id for item in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        if pages == 2:
            # A generation started while paging lands on page one, not in the pages ahead.
            newest = simple("gen-new", created=500.0)
            records.upsert_generation(newest, user_id=alice, request={})
    assert pages == 5
    assert seen == [s.generation_id for s in expected]

    first = records.list_generations(alice, limit=1).items[0]
    assert (first.id, first.title, first.status) == ("gen-new", "title of gen-new", "completed")
    assert [i.id for i in records.list_generations(bob).items] == [
        f"gen-b{i}" for i in (3, 2, 1, 0)
    ]


def test_listing_filters_by_status(records: Records, alice: int, bob: int) -> None:
    records.upsert_generation(
        simple("gen-1", 1, GenerationStatus.completed), user_id=alice, request={}
    )
    records.upsert_generation(
        simple("gen-2", 2, GenerationStatus.failed), user_id=alice, request={}
    )
    records.upsert_generation(
        simple("gen-3", 3, GenerationStatus.completed), user_id=alice, request={}
    )
    records.upsert_generation(
        simple("gen-4", 4, GenerationStatus.completed), user_id=bob, request={}
    )
    completed = records.list_generations(alice, status=GenerationStatus.completed, limit=1)
    assert [i.id for i in completed.items] == ["gen-3"]
    rest = records.list_generations(
        alice, status=GenerationStatus.completed, cursor=completed.next_cursor
    )
    assert [i.id for i in rest.items] == ["gen-1"] and rest.next_cursor is None
    either = records.list_generations(
        alice, status=[GenerationStatus.failed, GenerationStatus.completed]
    )
    assert [i.id for i in either.items] == ["gen-3", "gen-2", "gen-1"]
    assert records.list_generations(alice, status=GenerationStatus.cancelled).items == []


def test_listing_rejects_bad_arguments(records: Records, alice: int) -> None:
    for limit in (0, 101):
        with pytest.raises(BadInputError):
            records.list_generations(alice, limit=limit)
    for cursor in ("not-a-cursor", "!!", "WzFd"):
        with pytest.raises(BadInputError):
            records.list_generations(alice, cursor=cursor)


def test_count_running(records: Records, alice: int, bob: int) -> None:
    for i, status in enumerate(GenerationStatus):
        records.upsert_generation(simple(f"gen-{i}", i, status), user_id=alice, request={})
    records.upsert_generation(
        simple("gen-b", 1, GenerationStatus.generating), user_id=bob, request={}
    )
    # queued, planning, storyboarding, generating, awaiting_approval, awaiting_retry,
    # assembling: every run that has not ended holds one of the user's slots
    assert records.count_running(alice) == 7
    assert records.count_running(bob) == 1
    finished = simple("gen-0", 0, GenerationStatus.cancelled)
    finished.updated_at = finished.updated_at.replace(year=2030) if finished.updated_at else None
    records.upsert_generation(finished, user_id=alice, request={})
    assert records.count_running(alice) == 6


def test_cached_clips_are_marked(records: Records, alice: int) -> None:
    state = simple("gen-c", 0)
    state.clips = [
        ClipState(clip_id=1, status=ClipStatus.cached),
        ClipState(clip_id=2, status=ClipStatus.complete),
    ]
    records.upsert_generation(state, user_id=alice, request={})
    assert [c.cached for c in _rows(records, "gen-c")[1]] == [True, False]


# What the record leaves out of a state, on purpose; every other field needs its column.
NOT_RECORDED = {
    "generation_id": "the row's id",
    "clips": "the clips table",
    "metrics": "logged and exported when the run ends",
    "assembly": "in the published generation.json",
}


def test_every_field_of_a_generation_has_its_column() -> None:
    columns = set(Generation.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(GenerationState.model_fields) - columns - set(NOT_RECORDED) == set()


def test_every_field_of_a_clip_has_its_column() -> None:
    columns = set(Clip.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(ClipState.model_fields) - columns - {"media"} == set()


def test_a_batch_item_before_its_turn_answers_as_its_owners_queued_generation(
    records: Records, alice: int, bob: int
) -> None:
    """A batch lists every generation id at POST; an item's record comes with its turn. Until
    then its id must not be a 404 for the batch's owner (the page and clients follow the ids)."""
    items = [GenerationInput.model_validate(request_for(f"item {n}")) for n in range(2)]
    records.create_batch("batch-1", alice, "two", items, ["gen-b-0", "gen-b-1"])
    claimed = records.claim_batch_item("batch-1", 0, alice, max_running=5)
    assert claimed.request is not None

    waiting = records.get_generation("gen-b-1", alice)
    assert waiting is not None
    assert (waiting.status, waiting.title, waiting.clips) == (GenerationStatus.queued, "item 1", [])
    assert records.get_generation("gen-b-1", bob) is None
    assert records.get_generation("gen-nowhere", alice) is None
    # Its turn writes the real record, which wins from then on.
    records.claim_batch_item("batch-1", 1, alice, max_running=5)
    assert _rows(records, "gen-b-1")[0] is not None
