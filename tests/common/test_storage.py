"""Both storage backends through one API: a local directory, and S3 on a real moto server."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.common.config import ServiceSettings
from services.common.storage import (
    PART_SIZE,
    InvalidKey,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    storage_from_settings,
)
from tests.support.s3 import S3Server


def test_bytes_and_files_round_trip(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("a/b/c.txt", b"hello")
    assert storage.exists("a/b/c.txt") and storage.size("a/b/c.txt") == 5
    with storage.open_reader("a/b/c.txt") as stream:
        assert stream.read() == b"hello"

    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(300_000))
    storage.put_file("files/one.bin", source)
    target = tmp_path / "copy.bin"
    storage.download("files/one.bin", target)
    assert target.read_bytes() == source.read_bytes()

    storage.put_bytes("a/b/c.txt", b"replaced")
    with storage.open_reader("a/b/c.txt") as stream:
        assert stream.read() == b"replaced"


def test_missing_objects(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("nope/x")
    with pytest.raises(ObjectNotFound):
        storage.size("nope/x")
    with pytest.raises(ObjectNotFound), storage.open_reader("nope/x"):
        pass
    with pytest.raises(ObjectNotFound):
        storage.download("nope/x", tmp_path / "x")
    storage.delete("nope/x")  # deleting what is not there is fine


def test_a_streamed_write_over_one_part_is_multipart_and_exact(storage: Storage) -> None:
    block = os.urandom(1024 * 1024)
    parts = [block[i:] + block[:i] for i in range(0, 9 * 7919, 7919)]  # 9 MiB, all different
    with storage.open_writer("big/object.bin") as writer:
        assert not storage.exists("big/object.bin")  # invisible until it completes
        for part in parts:
            writer.write(part)
        writer.write(b"tail")
    expected = b"".join(parts) + b"tail"
    assert len(expected) > PART_SIZE
    assert storage.size("big/object.bin") == len(expected)
    with storage.open_reader("big/object.bin") as stream:
        assert stream.read() == expected
    if isinstance(storage, S3Storage):
        head = storage.client.head_object(Bucket=storage.bucket, Key="some/prefix/big/object.bin")
        assert head["ETag"].strip('"').endswith("-2")  # two parts: 9 MiB of parts, then the tail


def test_a_failed_streamed_write_leaves_nothing(storage: Storage) -> None:
    storage.put_bytes("keep/old.bin", b"old")
    with pytest.raises(RuntimeError), storage.open_writer("keep/old.bin") as writer:
        writer.write(os.urandom(PART_SIZE + 10))
        raise RuntimeError("client went away")
    with storage.open_reader("keep/old.bin") as stream:
        assert stream.read() == b"old"
    if isinstance(storage, S3Storage):
        pending = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert not pending.get("Uploads")
    else:
        assert isinstance(storage, LocalStorage)
        assert [p.name for p in (storage.root / "keep").iterdir()] == ["old.bin"]


def test_small_streamed_writes_and_empty_objects(storage: Storage) -> None:
    with storage.open_writer("small") as writer:
        writer.write(b"ab")
        writer.write(b"cd")
    with storage.open_writer("empty"):
        pass
    with storage.open_reader("small") as stream:
        assert stream.read() == b"abcd"
    assert storage.size("empty") == 0
    with storage.open_reader("empty") as stream:
        assert stream.read() == b""


def test_range_reads(storage: Storage) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MB
    storage.put_bytes("r/data", data)
    cases = [(0, None), (5, None), (5, 10), (1_000_000, 3_000_001), (len(data) - 3, None)]
    cases += [(len(data), None), (7, 7), (len(data) + 10, None), (0, len(data) + 50)]
    for start, end in cases:
        with storage.open_reader("r/data", start, end) as stream:
            assert stream.read() == data[start:end], (start, end)
    with storage.open_reader("r/data", 100, 100 + 5 * 1024 * 1024) as stream:
        assert stream.readline() == data[100 : data.index(b"\n", 100) + 1]
        assert stream.read(3) == data[data.index(b"\n", 100) + 1 :][:3]
    with pytest.raises(ValueError), storage.open_reader("r/data", 10, 5):
        pass


def test_delete_and_delete_prefix(storage: Storage) -> None:
    for key in ["up/1/a", "up/1/b", "up/1/deep/c", "up/10/a", "up/2/a", "other"]:
        storage.put_bytes(key, b"x")
    assert storage.delete_prefix("up/1/") == 3
    assert [storage.exists(k) for k in ["up/1/a", "up/1/deep/c", "up/10/a", "up/2/a"]] == [
        False,
        False,
        True,
        True,
    ]
    assert storage.delete_prefix("up/1") == 1  # a string prefix: up/10/a
    assert storage.delete_prefix("nothing/here/") == 0
    storage.delete("up/2/a")
    assert not storage.exists("up/2/a") and storage.exists("other")
    if isinstance(storage, LocalStorage):
        assert sorted(p.name for p in storage.root.iterdir()) == ["other"]  # no empty folders


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/./b", "a\\b", "a/"]
)
def test_unsafe_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        storage.exists(key)
    with pytest.raises(InvalidKey), storage.open_reader(key):
        pass


@pytest.mark.parametrize("prefix", ["", "/", "../", "a/../"])
def test_unsafe_prefixes_are_refused(storage: Storage, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        storage.delete_prefix(prefix)


def test_presigned_urls(storage: Storage) -> None:
    storage.put_bytes("reports/r1/report.pdf", b"%PDF-1.7 ...")
    url = storage.presigned_url("reports/r1/report.pdf", 60, filename="report r1.pdf")
    if isinstance(storage, LocalStorage):
        assert url is None
        return
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"%PDF-1.7 ..."
    assert response.headers["content-disposition"] == 'attachment; filename="report r1.pdf"'
    assert "X-Amz-Expires=60" in url and "X-Amz-Signature=" in url  # moto does not check them


def test_download_links_are_signed_for_the_public_endpoint(s3_server: S3Server) -> None:
    """Services reach S3 at one address (http://minio:9000 in compose), clients at another."""
    port = s3_server.endpoint_url.rsplit(":", 1)[1]
    internal, public = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    storage = storage_from_settings(
        ServiceSettings(
            storage_url="s3://offload-links/reports",
            s3_endpoint_url=internal,
            s3_public_endpoint_url=public,
        )
    )
    assert isinstance(storage, S3Storage)
    storage.client.create_bucket(Bucket="offload-links")
    storage.put_bytes("r2/report.pdf", b"%PDF-1.7 public")
    url = storage.presigned_url("r2/report.pdf", 60)
    assert url is not None and url.startswith(f"{public}/offload-links/reports/r2/report.pdf?")
    assert storage.client.meta.endpoint_url == internal  # everything else stays internal
    assert httpx.get(url).content == b"%PDF-1.7 public"


def test_storage_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = storage_from_settings(ServiceSettings())
    assert isinstance(default, LocalStorage) and default.root == tmp_path / "var" / "storage"
    local = storage_from_settings(ServiceSettings(storage_url=f"file://{tmp_path}/data"))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "data"
    s3 = storage_from_settings(
        ServiceSettings(storage_url="s3://bucket/a/b/", s3_endpoint_url="http://127.0.0.1:9000")
    )
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "a/b")
    assert s3.client.meta.endpoint_url == "http://127.0.0.1:9000"
    for bad in ["http://x", "s3:///prefix", "file://"]:
        with pytest.raises(ValueError):
            storage_from_settings(ServiceSettings(storage_url=bad))


def test_list_objects_in_key_order_with_sizes_and_times(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)  # S3 times may be cut to the second
    storage.put_bytes("list/b/2.txt", b"22")
    storage.put_bytes("list/a.txt", b"1")
    storage.put_bytes("list/b/1.txt", b"")
    storage.put_bytes("other/x.txt", b"x")
    with storage.open_writer("list/c/unfinished.bin") as writer:
        writer.write(b"not yet")
        listed = list(storage.list_objects("list/"))
    after = datetime.now(UTC) + timedelta(seconds=2)
    # An unfinished streamed write is invisible on S3 and a hidden `.part` file locally.
    finished = [o for o in listed if not o.key.startswith("list/c/")]
    assert [(o.key, o.size) for o in finished] == [
        ("list/a.txt", 1),
        ("list/b/1.txt", 0),
        ("list/b/2.txt", 2),
    ]
    assert all(before <= o.modified <= after for o in listed)
    assert all(o.key.startswith("list/c/.unfinished.bin.") for o in listed if o not in finished)
    assert [o.key for o in storage.list_objects("list/b")] == ["list/b/1.txt", "list/b/2.txt"]
    assert list(storage.list_objects("nothing/")) == []
    with pytest.raises(InvalidKey):
        list(storage.list_objects("../list/"))
