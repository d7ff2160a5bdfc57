"""The clip cache key is derived from the ``ClipJob`` itself: a field the job gains is in the
key without anyone listing it, the fields the job excludes by name are not, and the keys of
clips cached before the key was derived still hit."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from activities.cache import clip_digest
from activities.providers.base import ClipJob
from storyreel.contracts import PLATFORMS, Platform


def job(tmp_path: Path, **changes: object) -> ClipJob:
    base = ClipJob(
        generation_id="g",
        clip_id=3,
        prompt="A lighthouse at dusk",
        text="Waves",
        duration=5.0,
        platform=PLATFORMS[Platform.youtube],
        model="kwaivgi/kling-v2.1",
        seed=42,
        image=None,
        workdir=tmp_path,
        provider="replicate",
        clip_audio="duck",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_clip_cached_before_the_key_was_derived_still_hits(tmp_path: Path) -> None:
    # The digest the hand-listed key (provider, model, prompt, text, duration, size, seed,
    # image, audio) gave this job.
    before = "a7a174bd66031bc4e03e0a27247eaa1f8f405faed0dccadfbec1d1e727ec3a49"
    assert clip_digest(job(tmp_path)) == before


def test_a_field_added_to_the_job_is_in_the_key(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class StyledJob(ClipJob):
        style: str = "watercolour"

    plain = job(tmp_path)
    styled = StyledJob(**{spec.name: getattr(plain, spec.name) for spec in fields(plain)})
    assert clip_digest(replace(styled, style="noir")) != clip_digest(styled)


def test_every_field_but_the_excluded_ones_changes_the_key(tmp_path: Path) -> None:
    image = tmp_path / "reference.png"
    image.write_bytes(b"first frame")
    other = tmp_path / "other.png"
    other.write_bytes(b"another first frame")
    changed: dict[str, object] = {
        "prompt": "A lighthouse at dawn",
        "text": "Gulls",
        "duration": 5.5,
        "platform": PLATFORMS[Platform.tiktok],
        "model": "minimax/hailuo-02",
        "seed": 43,
        "image": image,
        "provider": "fal",
        "clip_audio": "drop",
        "draft": True,
        "references": (other,),
    }
    keyed = {spec.name for spec in fields(ClipJob)} - ClipJob.NOT_IN_CACHE_KEY
    assert keyed == set(changed), "give each keyed field of ClipJob a changed value here"
    base = clip_digest(job(tmp_path))
    for name, value in changed.items():
        assert clip_digest(job(tmp_path, **{name: value})) != base, name
    # The image counts by its bytes, not by its path.
    assert clip_digest(job(tmp_path, image=image)) != clip_digest(job(tmp_path, image=other))
    same = tmp_path / "same.png"
    same.write_bytes(b"first frame")
    assert clip_digest(job(tmp_path, image=image)) == clip_digest(job(tmp_path, image=same))
    # References too, and a job without any keys as it did before they existed.
    assert clip_digest(job(tmp_path, references=(image,))) == clip_digest(
        job(tmp_path, references=(same,))
    )
    assert clip_digest(job(tmp_path, references=(), draft=False)) == base


def test_the_excluded_fields_leave_the_key_alone(tmp_path: Path) -> None:
    base = clip_digest(job(tmp_path))
    elsewhere = job(
        tmp_path / "elsewhere",
        generation_id="another run",
        clip_id=9,
        audio=False,
        duration=5.0001,  # to the millisecond
    )
    assert clip_digest(elsewhere) == base
