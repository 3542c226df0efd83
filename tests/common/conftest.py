"""Storage fixtures for the tests of services/common: each backend, S3 on a real moto server."""

from tests.support.s3 import s3_server, storage

__all__ = ["s3_server", "storage"]
