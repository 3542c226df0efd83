"""Analyzer errors: each carries a stable code; its base class says whether to retry."""

from services.common.errors import BusinessError, OffloadError, TransientError


class AnalyzerError(OffloadError):
    """Base of every failure the analyzer reports as a job result."""

    code = "analyzer_error"


class BlogNotFound(AnalyzerError, BusinessError):
    """The blog's home page answered 404 or 410, or its host does not exist."""

    code = "blog_not_found"


class NotABlog(AnalyzerError, BusinessError):
    """No RSS/Atom feed could be discovered, or the discovered feed is not a feed."""

    code = "no_feed"


class BlockedAddress(AnalyzerError, BusinessError):
    """The SSRF guard refused to connect to a private, loopback or reserved address."""

    code = "blocked_address"


class TransientFetchError(AnalyzerError, TransientError):
    """A timeout, connection error, 5xx or 429 that may succeed if the crawl is retried."""

    code = "fetch_transient"


class FetchFailed(AnalyzerError, BusinessError):
    """A non-retryable fetch failure: 403 and other 4xx, too large, too many redirects."""

    code = "fetch_failed"
