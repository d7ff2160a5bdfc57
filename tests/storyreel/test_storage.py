"""One storage suite, run on the local directory backend and on a real S3 server (moto's)."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from urllib.request import url2pathname

import httpx
import pytest

from storyreel.errors import StorageKeyError
from storyreel.s3 import MIN_PART_SIZE, MiB, S3Storage
from storyreel.settings import Settings
from storyreel.storage import LocalStorage, Storage, parse_storage_url, storage_from_settings
from tests.s3_fixtures import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint

log = logging.getLogger(__name__)

KEY = "generations/g/clips/001.mp4"
BIG = 200 * MiB
# Peak RSS a 200 MiB transfer may add: a few parts in flight, far below the object's size.
MEMORY_BUDGET = 64 * MiB
PRESIGN_EXPIRY = 900


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    endpoint: S3Endpoint = request.getfixturevalue("moto_server")
    bucket: str = request.getfixturevalue("bucket")
    # The smallest part S3 allows, so a few MiB already make a multipart upload.
    return S3Storage(
        bucket, "media", endpoint.client(), presign_expiry=PRESIGN_EXPIRY, part_size=MIN_PART_SIZE
    )


def fetch(url: str) -> bytes:
    """GET a URL as a client of the storage would: a file URI or an HTTP(S) URL."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(url2pathname(parts.path)).read_bytes()
    response = httpx.get(url)
    response.raise_for_status()
    return response.content


def leftovers(storage: Storage, tmp_root: Path) -> list[str]:
    """Partial writes still lying around: temp files, or unfinished multipart uploads."""
    if isinstance(storage, LocalStorage):
        return [str(p) for p in storage.root.rglob("*.part")]
    assert isinstance(storage, S3Storage)
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return [upload["Key"] for upload in uploads.get("Uploads", [])]


def chunks_of(size: int, chunk: int = MiB) -> Iterator[bytes]:
    """Deterministic bytes in which every chunk differs, so order and gaps show."""
    for index in range(size // chunk):
        seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
        yield seed * (chunk // len(seed))


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for block in chunks_of(size):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def test_put_get_round_trip(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"abc" * 1000)
    url = storage.put_file(KEY, source)
    assert fetch(url) == source.read_bytes()
    storage.get_file(KEY, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert leftovers(storage, tmp_path) == []


def test_exists_and_delete(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x")
    assert not storage.exists(KEY)
    storage.put_file(KEY, source)
    assert storage.exists(KEY)
    assert not storage.exists("generations/g/clips/002.mp4")
    storage.delete(KEY)
    assert not storage.exists(KEY)
    storage.delete(KEY)  # deleting what is gone is not an error


def test_url_serves_the_object(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"frame" * 100)
    storage.put_file(KEY, source)
    url = storage.url(KEY)
    if isinstance(storage, LocalStorage):
        assert url == (storage.root / KEY).as_uri()
    else:
        # A plain GET, no credentials: only the presigned query authorises it.
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == [str(PRESIGN_EXPIRY)]
        assert "X-Amz-Signature" in query
    assert fetch(url) == source.read_bytes()


def test_local_path(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x")
    storage.put_file(KEY, source)
    path = storage.local_path(KEY)
    if isinstance(storage, LocalStorage):
        assert path == storage.root / KEY
        assert path.read_bytes() == b"x"
    else:
        assert path is None


BAD_KEYS = ["", "/etc/passwd", "../outside", "a/../../b", "a\\b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_rejected(storage: Storage, tmp_path: Path, key: str) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x")
    calls: list[Callable[[], object]] = [
        lambda: storage.put_file(key, source),
        lambda: storage.put_stream(key, [b"x"]),
        lambda: storage.get_file(key, tmp_path / "out.bin"),
        lambda: storage.exists(key),
        lambda: storage.url(key),
        lambda: storage.local_path(key),
        lambda: storage.delete(key),
    ]
    for call in calls:
        with pytest.raises(StorageKeyError, match="invalid storage key"):
            call()


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageKeyError):
        LocalStorage(tmp_path).path(key)


def test_missing_object_is_a_clear_error(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageKeyError, match="no object"):
        storage.get_file("nope.mp4", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_put_replaces_the_object(storage: Storage, tmp_path: Path) -> None:
    first, second = tmp_path / "1.bin", tmp_path / "2.bin"
    first.write_bytes(b"first version, longer")
    second.write_bytes(b"second")
    storage.put_file(KEY, first)
    storage.put_file(KEY, second)
    storage.get_file(KEY, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"second"
    storage.put_stream(KEY, [b"th", b"ird"])
    storage.get_file(KEY, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"third"


@pytest.mark.parametrize(
    "sizes",
    [[], [0], [10, 0, 20], [MiB] * 12 + [123], [7 * MiB, 7 * MiB]],
    ids=["nothing", "empty-chunk", "small", "multipart", "big-chunks"],
)
def test_put_stream_round_trip(storage: Storage, tmp_path: Path, sizes: list[int]) -> None:
    chunks = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    url = storage.put_stream(KEY, iter(chunks))
    storage.get_file(KEY, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"".join(chunks)
    assert fetch(url) == b"".join(chunks)
    assert leftovers(storage, tmp_path) == []
    if isinstance(storage, S3Storage):
        # A multipart object's ETag ends in "-<parts>": proof of which path the upload took.
        etag = storage.client.head_object(Bucket=storage.bucket, Key=storage.object_key(KEY))
        assert ("-" in etag["ETag"]) == (sum(sizes) >= storage.part_size)


def test_failed_stream_stores_nothing(storage: Storage, tmp_path: Path) -> None:
    storage.put_stream(KEY, [b"old"])

    def broken() -> Iterator[bytes]:
        # Past one part, so S3 has a multipart upload open to abort.
        yield from chunks_of(MIN_PART_SIZE + MiB)
        raise ConnectionError("download cut off")

    with pytest.raises(ConnectionError):
        storage.put_stream(KEY, broken())
    with pytest.raises(ConnectionError):
        storage.put_stream("generations/g/other.mp4", broken())
    assert leftovers(storage, tmp_path) == []
    assert not storage.exists("generations/g/other.mp4")
    storage.get_file(KEY, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"old"


def test_s3_keys_live_under_the_prefix(moto_server: S3Endpoint, bucket: str, tmp_path: Path):
    client = moto_server.client()
    S3Storage(bucket, "/env/media/", client, presign_expiry=60).put_stream(KEY, [b"x"])
    S3Storage(bucket, "", client, presign_expiry=60).put_stream("top.bin", [b"y"])
    listed = client.list_objects_v2(Bucket=bucket)
    assert sorted(item["Key"] for item in listed["Contents"]) == [f"env/media/{KEY}", "top.bin"]


def test_s3_part_size_has_s3s_minimum(moto_server: S3Endpoint) -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Storage("b", "", moto_server.client(), presign_expiry=60, part_size=MIN_PART_SIZE - 1)


class FutureSettings(Settings):
    """Settings with the storage fields this backend reads, as they will be declared."""

    storage_url: str | None = None
    presign_expiry_seconds: int = 3600


def test_settings_default_to_local_media_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, _env_file=None)
    storage = storage_from_settings(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "media").resolve()
    empty = FutureSettings(data_dir=tmp_path, storage_url="", _env_file=None)
    assert isinstance(storage_from_settings(empty), LocalStorage)


def test_settings_select_s3_from_the_environment(
    moto_server: S3Endpoint, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    settings = FutureSettings(
        data_dir=tmp_path,
        storage_url=f"s3://{bucket}/prod/media",
        presign_expiry_seconds=120,
        _env_file=None,
    )
    storage = storage_from_settings(settings)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix, storage.presign_expiry) == (bucket, "prod/media", 120)
    url = storage.put_stream(KEY, [b"via the environment"])
    assert fetch(url) == b"via the environment"
    head = moto_server.client().head_object(Bucket=bucket, Key=f"prod/media/{KEY}")
    assert head["ContentLength"] == len(b"via the environment")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://b/a/b/", ("b", "a/b")),
    ],
)
def test_storage_url_parsing(url: str, expected: tuple[str, str]) -> None:
    assert parse_storage_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "bucket/prefix",
        "http://bucket/p",
        "s3://",
        "s3:///prefix",
        "s3://b/../x",
        "s3://u@b/p",
        "s3://b:9000/p",
        "s3://b/p?versioning=1",
        "s3://b/a\\b",
    ],
)
def test_bad_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="storage URL"):
        parse_storage_url(url)


# --- 200 MiB objects in flat memory ------------------------------------------------------


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise LookupError(field)


@dataclass
class PeakGrowth:
    """How far this process's peak RSS rose above its RSS at the start of a block."""

    bytes: int = 0


@contextmanager
def peak_growth() -> Iterator[PeakGrowth]:
    # Reset the high-water mark (VmHWM) to the current RSS. Should the kernel refuse, the old
    # mark stays and the figure can only come out too high, never too low.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log.warning("cannot reset VmHWM: memory growth figures are upper bounds")
    before = _status_bytes("VmRSS")
    growth = PeakGrowth()
    yield growth
    growth.bytes = _status_bytes("VmHWM") - before


def test_the_memory_gauge_sees_a_buffered_object() -> None:
    # The gauge must flag what the flat-memory test guards against: a whole object in memory.
    # Other threads of this test process may free memory meanwhile (lowering the figure a
    # little), so the check is against the budget, not the exact size.
    gc.collect()
    with peak_growth() as growth:
        buffered = b"x" * BIG
    del buffered
    assert growth.bytes >= 2 * MEMORY_BUDGET, f"+{growth.bytes / MiB:.1f} MiB"


@pytest.fixture(params=["local", "s3"])
def far_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Like ``storage``, but S3 is a server in another process: its memory is not counted."""
    if request.param == "local":
        return LocalStorage(tmp_path / "media")
    endpoint: S3Endpoint = request.getfixturevalue("moto_process")
    return S3Storage(endpoint.new_bucket(), "media", endpoint.client(), presign_expiry=60)


def test_200_mib_objects_stream_in_flat_memory(far_storage: Storage, tmp_path: Path) -> None:
    storage = far_storage
    name = type(storage).__name__
    expected = hashlib.sha256()

    def download() -> Iterator[bytes]:
        for block in chunks_of(BIG):
            expected.update(block)
            yield block

    figures: dict[str, int] = {}
    with peak_growth() as growth:
        storage.put_stream("big/streamed.bin", download())
    figures["put_stream"] = growth.bytes
    with peak_growth() as growth:
        storage.get_file("big/streamed.bin", tmp_path / "streamed.bin")
    figures["get_file (streamed)"] = growth.bytes
    assert (tmp_path / "streamed.bin").stat().st_size == BIG
    assert sha256_of(tmp_path / "streamed.bin") == expected.hexdigest()

    with peak_growth() as growth:
        storage.put_file("big/file.bin", tmp_path / "streamed.bin")
    figures["put_file"] = growth.bytes
    (tmp_path / "streamed.bin").unlink()
    with peak_growth() as growth:
        storage.get_file("big/file.bin", tmp_path / "file.bin")
    figures["get_file"] = growth.bytes
    assert sha256_of(tmp_path / "file.bin") == expected.hexdigest()

    report = ", ".join(f"{op} +{size / MiB:.1f} MiB" for op, size in figures.items())
    log.info("%s, 200 MiB, peak RSS growth: %s", name, report)
    assert max(figures.values()) < MEMORY_BUDGET, report
