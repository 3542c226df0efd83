import pytest

from services.common.contracts.blog_url import normalize_blog_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM/", "https://example.com/"),
        ("http://example.com:80/blog/", "http://example.com/blog"),
        ("https://example.com:443/blog", "https://example.com/blog"),
        ("https://example.com:8443/blog/", "https://example.com:8443/blog"),
        ("  https://example.com/blog#comments  ", "https://example.com/blog"),
        ("https://www.example.com/", "https://www.example.com/"),
        ("https://example.com/Blog/Posts/", "https://example.com/Blog/Posts"),
        ("https://example.com//", "https://example.com/"),
        (
            "https://example.com/?utm_source=x&b=2&UTM_Medium=y&a=1&fbclid=abc&gclid=d",
            "https://example.com/?a=1&b=2",
        ),
        ("https://example.com/?utm_campaign=spring", "https://example.com/"),
        ("https://example.com/?b=&a=1", "https://example.com/?a=1&b="),
        ("https://bücher.example/blog", "https://xn--bcher-kva.example/blog"),
        ("https://example.com./", "https://example.com/"),
        ("http://127.0.0.1:8000/wp", "http://127.0.0.1:8000/wp"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("http://[2001:DB8:0::1]/", "http://[2001:db8::1]/"),
        ("https://example.com/café/", "https://example.com/caf%C3%A9"),
        ("https://example.com/caf%C3%A9", "https://example.com/caf%C3%A9"),
    ],
)
def test_normalizes(raw: str, expected: str) -> None:
    assert normalize_blog_url(raw) == expected


def test_is_idempotent() -> None:
    once = normalize_blog_url("HTTP://Bücher.Example:80/Blog/?z=1&utm_term=x&a=2#top")
    assert normalize_blog_url(once) == once == "http://xn--bcher-kva.example/Blog?a=2&z=1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("example.com/blog", "absolute"),
        ("/blog", "absolute"),
        ("ftp://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "invalid port"),
        ("https://exa mple.com/", "whitespace"),
    ],
)
def test_rejects_non_blog_urls(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_blog_url(raw)
