"""The model catalogue's data: every listed model is there, sourced and dated, with sane lengths,
and the facts checked on the providers' pages hold."""

from __future__ import annotations

import pytest

from storyreel.catalogue import ModelSpec, catalogue

LISTED = [
    "replicate/kwaivgi/kling-v2.1",
    "replicate/kwaivgi/kling-v2.5-turbo-pro",
    "replicate/minimax/hailuo-02",
    "replicate/minimax/video-01",
    "replicate/google/veo-3",
    "replicate/google/veo-3-fast",
    "replicate/google/veo-3.1",
    "replicate/google/veo-3.1-fast",
    "replicate/bytedance/seedance-1-pro",
    "replicate/bytedance/seedance-1-lite",
    "replicate/wan-video/wan-2.2-i2v-fast",
    "replicate/wan-video/wan-2.2-t2v-fast",
    "replicate/luma/ray-2-720p",
    "fal/fal-ai/kling-video/v2.1/master/text-to-video",
    "fal/fal-ai/kling-video/v2.1/master/image-to-video",
    "fal/fal-ai/kling-video/v2.1/standard/image-to-video",
    "fal/fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
    "fal/fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
    "fal/fal-ai/minimax/hailuo-02/standard/text-to-video",
    "fal/fal-ai/minimax/hailuo-02/standard/image-to-video",
    "fal/fal-ai/veo3",
    "fal/fal-ai/veo3/fast",
    "fal/fal-ai/veo3/image-to-video",
    "fal/fal-ai/veo3/fast/image-to-video",
    "fal/fal-ai/wan/v2.2-a14b/text-to-video",
    "fal/fal-ai/wan/v2.2-a14b/image-to-video",
    "runware/klingai:5@3",
    "runware/minimax:3@1",
    "runware/google:3@0",
    "runware/bytedance:2@1",
    "veo/veo-3.1-generate-preview",
    "veo/veo-3.1-fast-generate-preview",
    "veo/veo-3.0-generate-001",
    "veo/veo-3.0-fast-generate-001",
    "veo/veo-2.0-generate-001",
]

ENTRIES = sorted(catalogue().items())


def spec(key: str) -> ModelSpec:
    return catalogue()[key]


@pytest.mark.parametrize("key", LISTED)
def test_every_listed_model_is_catalogued(key: str) -> None:
    assert key in catalogue()


@pytest.mark.parametrize(("key", "entry"), ENTRIES)
def test_every_entry_says_where_and_when_it_was_read(key: str, entry: ModelSpec) -> None:
    assert entry.source and entry.source.startswith("https://"), key
    assert entry.read_on is not None, key
    if entry.price is not None:
        assert entry.price.source, key


@pytest.mark.parametrize(("key", "entry"), ENTRIES)
def test_lengths_are_sane_and_every_scene_is_covered(key: str, entry: ModelSpec) -> None:
    lengths = entry.durations.lengths()
    assert lengths, key
    assert all(1 <= length <= 20 for length in lengths), (key, lengths)
    for tenths in range(20, 101, 5):
        assert entry.durations.covering(tenths / 10) in lengths, (key, tenths / 10)


@pytest.mark.parametrize(("key", "entry"), ENTRIES)
def test_fields_are_consistent(key: str, entry: ModelSpec) -> None:
    if entry.first_frame_required:
        assert entry.first_frame_field, key
    if entry.audio_field:
        assert entry.audio, key
    if entry.aspect_ratios:
        assert entry.aspect_ratio_field, key
    if entry.resolutions:
        assert entry.resolution_field, key
    for size in entry.sizes:
        width, _, height = size.partition("x")
        assert width.isdigit() and height.isdigit(), (key, size)


def test_replicate_kling_21_needs_a_start_image_and_makes_5_or_10_s() -> None:
    kling = spec("replicate/kwaivgi/kling-v2.1")
    assert kling.first_frame_field == "start_image"
    assert kling.first_frame_required
    assert "start_image" in kling.required
    assert kling.last_frame_field == "end_image"
    assert kling.durations.lengths() == [5, 10]
    assert kling.durations.spell(5) == 5


def test_replicate_hailuo_02_takes_first_and_last_frame_images() -> None:
    hailuo = spec("replicate/minimax/hailuo-02")
    assert hailuo.first_frame_field == "first_frame_image"
    assert hailuo.last_frame_field == "last_frame_image"
    assert not hailuo.first_frame_required
    assert hailuo.durations.lengths() == [6]  # 10 s only at 768p; the default is 1080p


def test_replicate_veo_31_takes_reference_images_and_makes_sound() -> None:
    veo = spec("replicate/google/veo-3.1")
    assert veo.reference_images_field == "reference_images"
    assert veo.last_frame_field == "last_frame"
    assert veo.audio and veo.audio_field == "generate_audio"
    assert veo.durations.lengths() == [4, 6, 8]


def test_replicate_seedance_pro_takes_any_whole_length_from_2_to_12() -> None:
    seedance = spec("replicate/bytedance/seedance-1-pro")
    assert seedance.durations.lengths() == list(range(2, 13))
    assert seedance.durations.covering(6.5) == 7


def test_wan_makes_a_fixed_length_from_81_frames_at_16_fps() -> None:
    for key in ("replicate/wan-video/wan-2.2-i2v-fast", "fal/fal-ai/wan/v2.2-a14b/image-to-video"):
        durations = spec(key).durations
        assert durations.field is None
        assert durations.lengths() == [81 / 16]


def test_fal_kling_lengths_are_strings() -> None:
    for key in (
        "fal/fal-ai/kling-video/v2.1/master/text-to-video",
        "fal/fal-ai/kling-video/v2.1/master/image-to-video",
        "fal/fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
    ):
        durations = spec(key).durations
        assert durations.lengths() == [5, 10]
        assert durations.spell(5) == "5"
        assert durations.spell(10) == "10"
    assert spec("fal/fal-ai/kling-video/v2.1/master/image-to-video").first_frame_field == (
        "image_url"
    )


def test_fal_kling_prices_per_clip() -> None:
    price = spec("fal/fal-ai/kling-video/v2.1/master/text-to-video").price
    assert price is not None
    assert price.cost(5) == pytest.approx(1.40)
    assert price.cost(10) == pytest.approx(2.80)


def test_fal_veo3_lengths_have_a_seconds_suffix_and_sound_costs_more() -> None:
    veo = spec("fal/fal-ai/veo3")
    assert veo.durations.lengths() == [4, 6, 8]
    assert [veo.durations.spell(length) for length in veo.durations.lengths()] == [
        "4s",
        "6s",
        "8s",
    ]
    assert veo.audio_field == "generate_audio"
    assert veo.price is not None
    assert veo.price.cost(8) == pytest.approx(1.60)
    assert veo.price.cost(8, audio=True) == pytest.approx(3.20)


def test_fal_hailuo_lengths_are_6_or_10_strings() -> None:
    hailuo = spec("fal/fal-ai/minimax/hailuo-02/standard/image-to-video")
    assert hailuo.durations.spell(6) == "6"
    assert hailuo.durations.lengths() == [6, 10]
    assert hailuo.last_frame_field == "end_image_url"


@pytest.mark.parametrize("key", [key for key, entry in ENTRIES if entry.provider == "runware"])
def test_runware_entries_speak_runware(key: str) -> None:
    entry = spec(key)
    assert entry.prompt_field == "positivePrompt"
    assert entry.first_frame_field == "inputs.frameImages"
    assert entry.durations.field == "duration"
    assert entry.aspect_ratio_field is None
    assert entry.sizes


def test_runware_sizes_pick_the_closest_shape() -> None:
    kling = spec("runware/klingai:5@3")
    assert kling.size(1080, 1920) == (1080, 1920)
    assert kling.size(1280, 720) == (1920, 1080)
    veo = spec("runware/google:3@0")
    assert veo.durations.lengths() == [8]
    assert veo.size(720, 1280) == (720, 1280)


@pytest.mark.parametrize("key", [key for key, entry in ENTRIES if entry.provider == "veo"])
def test_gemini_veo_entries_use_the_rest_field_names(key: str) -> None:
    entry = spec(key)
    assert entry.prompt_field == "prompt"
    assert entry.first_frame_field == "image"
    assert entry.durations.field == "durationSeconds"
    assert entry.durations.kind == "int"
    assert entry.aspect_ratio_field == "aspectRatio"
    assert entry.aspect_ratios == ["16:9", "9:16"]
    assert entry.negative_prompt_field == "negativePrompt"


def test_gemini_veo_lengths_and_sound() -> None:
    assert spec("veo/veo-3.1-generate-preview").durations.lengths() == [4, 6, 8]
    assert spec("veo/veo-3.1-generate-preview").last_frame_field == "lastFrame"
    assert spec("veo/veo-3.1-generate-preview").reference_images_field == "referenceImages"
    veo2 = spec("veo/veo-2.0-generate-001")
    assert veo2.durations.lengths() == [5, 6, 7, 8]
    assert not veo2.audio
    assert all(spec(key).audio for key in LISTED if key.startswith("veo/veo-3"))
