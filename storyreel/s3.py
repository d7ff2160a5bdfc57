"""The S3 storage backend (AWS S3, MinIO, any S3-compatible server) on boto3.

Large objects never sit in memory: files go up and down through boto3's managed transfers in
``part_size`` parts, and :meth:`S3Storage.put_stream` sends a multipart upload part by part.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from storyreel.errors import StorageKeyError
from storyreel.storage import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3 rejects smaller parts, except the last one
DEFAULT_PART_SIZE = 8 * MiB
# Parts in flight per managed transfer: bounds memory (and connections) per put/get.
TRANSFER_CONCURRENCY = 4
_MISSING = {"404", "NoSuchKey", "NotFound"}


def client_from_environment(endpoint: str | None = None) -> S3Client:
    """An S3 client for ``endpoint`` (``Settings.aws_endpoint_url``: MinIO, moto, ...; None:
    AWS itself). boto3 reads the credentials and region itself (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).
    """
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard"},
        # Self-hosted servers seldom have wildcard DNS for virtual-hosted bucket names.
        s3={"addressing_style": "path"} if endpoint else {},
    )
    # A session of its own: boto3's default session is not thread-safe to build clients from.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING


class S3Storage:
    """Objects in one bucket, under an optional key prefix; URLs are presigned GETs."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        *,
        presign_expiry: int,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if presign_expiry <= 0:
            raise ValueError("presign_expiry must be a positive number of seconds")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.client = client if client is not None else client_from_environment()
        self.presign_expiry = presign_expiry
        self.part_size = part_size
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=TRANSFER_CONCURRENCY,
        )

    def object_key(self, key: str) -> str:
        """The S3 key of storage key ``key`` (with the prefix)."""
        path = check_key(key).as_posix()
        return f"{self.prefix}/{path}" if self.prefix else path

    def put_file(self, key: str, source: Path) -> str:
        self.client.upload_file(
            str(source), self.bucket, self.object_key(key), Config=self._transfer
        )
        log.debug("stored %s in bucket %s", key, self.bucket)
        return self.url(key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> str:
        name = self.object_key(key)
        pending: list[bytes] = []
        size = 0
        upload: _MultipartUpload | None = None
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                pending.append(chunk)
                size += len(chunk)
                if size >= self.part_size:
                    # A part may run past part_size by up to one chunk: S3 only needs
                    # every part but the last to be at least 5 MiB, not equal sizes.
                    upload = upload or _MultipartUpload(self.client, self.bucket, name)
                    upload.send(b"".join(pending))
                    pending.clear()
                    size = 0
            if upload is None:
                # Small enough for one request: no multipart upload to create and finish.
                self.client.put_object(Bucket=self.bucket, Key=name, Body=b"".join(pending))
            else:
                if pending:
                    upload.send(b"".join(pending))
                    pending.clear()
                upload.complete()
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        log.debug("streamed %s into bucket %s", key, self.bucket)
        return self.url(key)

    def get_file(self, key: str, dest: Path) -> None:
        try:
            self.client.download_file(
                self.bucket, self.object_key(key), str(dest), Config=self._transfer
            )
        except ClientError as error:
            if _is_missing(error):
                raise StorageKeyError(f"no object at {key!r}") from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    def url(self, key: str) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=self.presign_expiry,
        )

    def local_path(self, key: str) -> None:
        check_key(key)
        return None

    def delete(self, key: str) -> None:
        # S3 answers 204 for a missing key too: deleting is idempotent, as in LocalStorage.
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        log.debug("deleted %s from bucket %s", key, self.bucket)


class _MultipartUpload:
    """One multipart upload in progress: parts go up one at a time, in order."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        # Mirror boto3's managed transfers: with checksums on (the default), declare CRC32
        # up front and echo each part's checksum at completion, as S3 then requires.
        # (getattr: botocore-stubs does not declare this Config attribute yet.)
        calculation = getattr(client.meta.config, "request_checksum_calculation", None)
        self.checksum = calculation == "when_supported"
        if self.checksum:
            created = client.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32"
            )
        else:
            created = client.create_multipart_upload(Bucket=bucket, Key=key)
        self.upload_id = created["UploadId"]
        self.parts: list[CompletedPartTypeDef] = []

    def send(self, body: bytes) -> None:
        number = len(self.parts) + 1
        sent = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        part: CompletedPartTypeDef = {"ETag": sent["ETag"], "PartNumber": number}
        if self.checksum and "ChecksumCRC32" in sent:
            part["ChecksumCRC32"] = sent["ChecksumCRC32"]
        self.parts.append(part)

    def complete(self) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        # Parts of an unfinished upload are stored (and billed) until aborted. A failed abort
        # must not hide the error that caused it; a bucket lifecycle rule is the backstop.
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except Exception:
            log.warning("could not abort the multipart upload of %s", self.key, exc_info=True)
