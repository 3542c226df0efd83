"""Analyzer errors: each carries a stable code and whether retrying the crawl can help."""


class AnalyzerError(Exception):
    """Base of every failure the analyzer reports as a job result."""

    code: str = "analyzer_error"
    retryable: bool = False


class BlogNotFound(AnalyzerError):
    """The blog's home page answered 404 or 410, or its host does not exist."""

    code = "blog_not_found"


class NotABlog(AnalyzerError):
    """No RSS/Atom feed could be discovered, or the discovered feed is not a feed."""

    code = "no_feed"


class BlockedAddress(AnalyzerError):
    """The SSRF guard refused to connect to a private, loopback or reserved address."""

    code = "blocked_address"


class TransientFetchError(AnalyzerError):
    """A timeout, connection error, 5xx or 429 that may succeed if the crawl is retried."""

    code = "fetch_transient"
    retryable = True


class FetchFailed(AnalyzerError):
    """A non-retryable fetch failure: 403 and other 4xx, too large, too many redirects."""

    code = "fetch_failed"
