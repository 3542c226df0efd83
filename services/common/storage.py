"""Object storage for uploads and reports: a local directory (the default) or any S3 API.

`OFFLOAD_STORAGE_URL` picks the backend: `file:///abs/dir` or `s3://bucket/prefix` (AWS, MinIO
with `OFFLOAD_S3_ENDPOINT_URL`; credentials from the standard AWS variables or boto3's chain).
Keys are relative slash-separated paths such as `uploads/<id>/rows.jsonl`; `..`, `.`, empty
segments, absolute paths and backslashes are refused.

The API is synchronous: pdfgen workers call it directly, the gateway through worker threads.
A streamed write becomes visible only when it completes (local: temp file + atomic rename;
S3: multipart upload completed), and an abandoned one leaves nothing behind.
"""

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from services.common.config import ServiceSettings

# S3 refuses parts under 5 MiB (but the last); bigger parts mean fewer requests.
PART_SIZE = 8 * 1024 * 1024
READ_BUFFER = 1024 * 1024
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


class StorageError(Exception):
    """Base of the errors storage raises."""


class InvalidKey(StorageError, ValueError):
    """A key that is empty, absolute, or escapes its prefix (`..`)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object has this key."""


def check_key(key: str) -> str:
    """The key if it is a safe relative path; InvalidKey otherwise."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """The prefix if it is a safe, non-empty key prefix (a trailing `/` is allowed)."""
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


class ObjectWriter:
    """A streamed write: `write` chunks, then `commit` (or `abort`); a context manager commits
    on success and aborts on error."""

    def __init__(self) -> None:
        self.written = 0
        self._done = False

    def write(self, data: bytes) -> None:
        """Append bytes to the object."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make the object visible under its key."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop everything written; idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if t is None:
            self.commit()
        else:
            self.abort()


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    key: str
    size: int
    modified: datetime


class Storage(Protocol):
    """What uploads and reports need from object storage."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under key."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under key."""

    def open_writer(self, key: str) -> ObjectWriter:
        """A streamed write of key (see ObjectWriter)."""

    def download(self, key: str, path: Path) -> None:
        """Copy the object to a local file."""

    def open_reader(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """A buffered stream of bytes [start, end) of the object (to its end if end is None)."""

    def size(self, key: str) -> int:
        """The object's size in bytes."""

    def exists(self, key: str) -> bool:
        """Whether an object has this key."""

    def delete(self, key: str) -> None:
        """Delete the object if it exists."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with prefix; how many there were."""

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with prefix, in key order (a streamed write shows
        only once it completes on S3, and as a hidden `.part` file locally)."""

    def presigned_url(self, key: str, expires_s: int, *, filename: str | None = None) -> str | None:
        """A URL anyone can GET the object from until it expires; None if the backend has none."""


class _RangeRaw(io.RawIOBase):
    """A raw stream over a `read(n)` function, stopping after `limit` bytes if given."""

    def __init__(self, read: Callable[[int], bytes], limit: int | None) -> None:
        self._read = read
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if self._left is not None:
            want = min(want, self._left)
        if want <= 0:
            return 0
        data = self._read(want)
        buffer[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)


def _buffered(read: Callable[[int], bytes], limit: int | None) -> BinaryIO:
    return io.BufferedReader(_RangeRaw(read, limit), READ_BUFFER)


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


class _LocalWriter(ObjectWriter):
    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        self._file = self._temp.open("xb")

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.written += len(data)

    def commit(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._path)
        except BaseException:
            self._file.close()
            self._temp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self._temp.unlink(missing_ok=True)


class LocalStorage:
    """Objects as files under a root directory (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_file(self, key: str, path: Path) -> None:
        with self.open_writer(key) as writer, path.open("rb") as source:
            while block := source.read(READ_BUFFER):
                writer.write(block)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.open_writer(key) as writer:
            writer.write(data)

    def open_writer(self, key: str) -> ObjectWriter:
        return _LocalWriter(self._path(key))

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    @contextmanager
    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Iterator[BinaryIO]:
        _check_range(start, end)
        try:
            file = self._path(key).open("rb", buffering=0)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        with file:
            file.seek(start)
            yield _buffered(file.read, None if end is None else end - start)

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path.stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _base(self, prefix: str) -> tuple[Path, str]:
        """The folder a prefix lies in and the start its entries there must have."""
        folder, _, start = check_prefix(prefix).rpartition("/")
        return (self.root / folder if folder else self.root), start

    def delete_prefix(self, prefix: str) -> int:
        base, start = self._base(prefix)
        if not base.is_dir():
            return 0
        deleted = 0
        for entry in os.scandir(base):
            if not entry.name.startswith(start):
                continue
            if entry.is_dir(follow_symlinks=False):
                deleted += sum(len(files) for _, _, files in os.walk(entry.path))
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
                deleted += 1
        self._prune(base)
        return deleted

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        base, start = self._base(prefix)
        if not base.is_dir():
            return
        found: list[Path] = []
        for entry in os.scandir(base):
            if not entry.name.startswith(start):
                continue
            if entry.is_dir(follow_symlinks=False):
                for parent, _, files in os.walk(entry.path):
                    found.extend(Path(parent) / name for name in files)
            elif entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
        for key, path in sorted((p.relative_to(self.root).as_posix(), p) for p in found):
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted or renamed since the scan
                continue
            yield StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def presigned_url(self, key: str, expires_s: int, *, filename: str | None = None) -> str | None:
        check_key(key)
        return None

    def _prune(self, folder: Path) -> None:
        """Remove empty folders from `folder` up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


class _S3Writer(ObjectWriter):
    """Small objects are one PUT; larger ones a multipart upload whose parts go up on a
    background thread, one at a time, while the next part fills (at most two parts in memory).
    """

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._sender: ThreadPoolExecutor | None = None
        self._sending: Future[None] | None = None

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.written += len(data)
        if len(self._buffer) >= self._part_size:
            self._send_part()

    def _send_part(self) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="s3-part")
        assert self._sender is not None
        self._wait_sent()
        body, self._buffer = bytes(self._buffer), bytearray()
        self._sending = self._sender.submit(self._upload_part, len(self._parts) + 1, body)

    def _upload_part(self, number: int, body: bytes) -> None:
        sent = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def _wait_sent(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            sending.result()

    def commit(self) -> None:
        if self._done:
            return
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
                )
            else:
                if self._buffer:
                    self._send_part()
                self._wait_sent()
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._sending is not None:
            with contextlib.suppress(Exception):
                self._sending.result()  # a part in flight would outlive the abort
            self._sending = None
        self._close()
        if self._upload_id is not None:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )

    def _close(self) -> None:
        self._buffer = bytearray()
        if self._sender is not None:
            self._sender.shutdown(wait=False)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in an S3 bucket, under an optional key prefix."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        part_size: int = PART_SIZE,
        *,
        link_client: Any = None,
    ) -> None:
        """`link_client` signs download links when clients reach S3 at another address than
        the services do (MinIO inside compose as http://minio:9000, published elsewhere)."""
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts must be at least 5 MiB")
        self.client = client
        self.link_client = link_client or client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size

    def __repr__(self) -> str:
        return f"S3Storage('s3://{self.bucket}/{self.prefix}')"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def open_writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self.client, self.bucket, self._key(key), self.part_size)

    def download(self, key: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise

    @contextmanager
    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Iterator[BinaryIO]:
        _check_range(start, end)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if end is not None:
            if end == start:  # an empty range: S3 has no way to ask for one
                self.size(key)
                yield io.BytesIO()
                return
            params["Range"] = f"bytes={start}-{end - 1}"
        elif start:
            params["Range"] = f"bytes={start}-"
        try:
            body = self.client.get_object(**params)["Body"]
        except ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            if code != "InvalidRange":
                raise
            body = None  # start is at or past the end of the object
        if body is None:
            yield io.BytesIO()
            return
        try:
            yield _buffered(body.read, None)
        finally:
            body.close()

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        """list_objects_v2 pages of every object under prefix."""
        full = self._key(prefix[:-1] if prefix.endswith("/") else prefix)
        full += "/" if prefix.endswith("/") else ""
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket, Prefix=full)

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        pages = self._pages(prefix)
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageError(f"could not delete {first.get('Key')}: {first.get('Message')}")
            deleted += len(keys)
        return deleted

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        skip = len(self.prefix) + 1 if self.prefix else 0
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"][skip:], item["Size"], item["LastModified"])

    def presigned_url(self, key: str, expires_s: int, *, filename: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename is not None:
            safe = filename.replace('"', "").replace("\\", "")
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        url: str = self.link_client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_s
        )
        return url


def s3_client(endpoint_url: str | None, region: str) -> Any:
    """A thread-safe boto3 S3 client; path-style addressing when an endpoint (MinIO) is set."""
    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def storage_from_settings(settings: ServiceSettings) -> Storage:
    """The storage OFFLOAD_STORAGE_URL names."""
    url = settings.storage_url
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote(url[len("file://") :])
        if not path:
            raise ValueError("OFFLOAD_STORAGE_URL file:// needs a directory")
        return LocalStorage(Path(path).expanduser())
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError("OFFLOAD_STORAGE_URL s3:// needs a bucket: s3://bucket/prefix")
        client = s3_client(settings.s3_endpoint_url, settings.s3_region)
        link_client = (
            s3_client(settings.s3_public_endpoint_url, settings.s3_region)
            if settings.s3_public_endpoint_url
            else None
        )
        return S3Storage(client, parts.netloc, unquote(parts.path), link_client=link_client)
    raise ValueError(f"OFFLOAD_STORAGE_URL must be file:// or s3://, not {url!r}")
