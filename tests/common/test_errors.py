"""The failure policy travels with the error class: what each worker error means to JobTask."""

import pytest

from services.analyzer import errors as analyzer
from services.common.errors import BusinessError, OffloadError, TransientError
from services.pdfgen import errors as pdfgen
from services.pusher import errors as pusher

TRANSIENT = [analyzer.TransientFetchError, pusher.AccessTokenError]
BUSINESS = [
    analyzer.BlogNotFound,
    analyzer.NotABlog,
    analyzer.BlockedAddress,
    analyzer.FetchFailed,
    pusher.InvalidMessage,
    pdfgen.ReportUnusable,
    pdfgen.LayoutError,
    pdfgen.FontMissing,
    pdfgen.ChunkRowsMismatch,
    pdfgen.MergeError,
]
# Neither: an internal error, dead-lettered for an operator (a broken credentials file).
INTERNAL = [pusher.CredentialsError]


@pytest.mark.parametrize("error", TRANSIENT)
def test_transient_errors_are_retried(error: type[OffloadError]) -> None:
    assert issubclass(error, TransientError) and not issubclass(error, BusinessError)
    assert error("x").retryable


@pytest.mark.parametrize("error", BUSINESS)
def test_business_errors_fail_the_job_at_once(error: type[OffloadError]) -> None:
    assert issubclass(error, BusinessError) and not issubclass(error, TransientError)
    assert not error("x").retryable


@pytest.mark.parametrize("error", INTERNAL)
def test_other_worker_errors_are_internal(error: type[OffloadError]) -> None:
    assert not issubclass(error, (BusinessError, TransientError))


@pytest.mark.parametrize("error", TRANSIENT + BUSINESS + INTERNAL)
def test_every_error_has_its_own_code(error: type[OffloadError]) -> None:
    codes = [e.code for e in TRANSIENT + BUSINESS + INTERNAL]
    assert codes.count(error.code) == 1 and error.code != OffloadError.code
