import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.analyzer.config import DEFAULT_SCORE_REFERENCES, DEFAULT_SCORE_WEIGHTS
from services.analyzer.models import BlogSnapshot, PostSnapshot
from services.analyzer.scoring import normalise, posts_per_week, score_blog

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
NOW = datetime(2024, 5, 2, 8, 30, tzinfo=UTC)


def post(days_ago: float, **numbers: int | None) -> PostSnapshot:
    return PostSnapshot(
        url=f"https://b.example/{days_ago}",
        title="t",
        published=T0 - timedelta(days=days_ago),
        **numbers,
    )


def snapshot(*posts: PostSnapshot, **blog: int | None) -> BlogSnapshot:
    return BlogSnapshot(
        home_url="https://b.example/",
        feed_url="https://b.example/feed/",
        posts=posts,
        fetched_at=NOW,
        **blog,
    )


def test_posts_per_week_rule() -> None:
    assert posts_per_week([]) is None
    assert posts_per_week([T0]) == 1.0
    assert posts_per_week([T0, T0, T0]) == 3.0  # all on one day: a one-week span
    assert posts_per_week([T0, T0 - timedelta(days=3)]) == 2.0
    assert posts_per_week([T0 - timedelta(days=d) for d in (0, 7, 14, 21, 28)]) == 1.25


def test_normalise_is_log_saturating() -> None:
    assert normalise(0, 50) == 0.0
    assert normalise(9, 99) == pytest.approx(0.5)
    assert normalise(99, 99) == 1.0
    assert normalise(10_000, 99) == 1.0
    assert normalise(1, 50) == pytest.approx(math.log(2) / math.log(51))


def test_exact_score_with_renormalised_weights() -> None:
    snap = snapshot(
        post(0, comments=9, views=99),
        post(14, comments=None, feed_comments=9, views=None),
        subscribers=0,
    )
    refs = {name: 99.0 for name in DEFAULT_SCORE_REFERENCES} | {"posts_per_week": 1.0}
    result = score_blog(snap, DEFAULT_SCORE_WEIGHTS, refs, NOW)
    assert result["metrics"] == {
        "posts_analyzed": 2,
        "posts_per_week": 1.0,
        "avg_comments": 9.0,
        "avg_likes": None,
        "avg_views": 99.0,
        "subscribers": 0,
        "daily_visitors": None,
    }
    # Scored weights 0.2 + 0.2 + 0.15 + 0.2 = 0.75; likes and visitors are left out.
    assert result["breakdown"] == {
        "posts_per_week": 26.67,  # 100 * 0.2 / 0.75 * 1
        "avg_comments": 13.33,  # 100 * 0.2 / 0.75 * 0.5
        "avg_views": 20.0,  # 100 * 0.15 / 0.75 * 1
        "subscribers": 0.0,  # published as 0, so scored as 0
    }
    assert result["score"] == 60.0
    assert result["blog_url"] == "https://b.example/"
    assert result["analyzed_at"] == "2024-05-02T08:30:00+00:00"
    assert set(result) == {"blog_url", "score", "metrics", "breakdown", "analyzed_at"}


def test_page_comments_win_over_feed_comments_and_averages_skip_unpublished() -> None:
    snap = snapshot(
        post(0, comments=10, feed_comments=2, likes=4),
        post(1, comments=None, feed_comments=5, likes=None),
        post(2, comments=None, feed_comments=None, likes=7),
    )
    metrics = score_blog(snap, DEFAULT_SCORE_WEIGHTS, DEFAULT_SCORE_REFERENCES, NOW)["metrics"]
    assert metrics["avg_comments"] == 7.5
    assert metrics["avg_likes"] == 5.5
    assert metrics["avg_views"] is None


def test_everything_at_reference_scores_100() -> None:
    refs = DEFAULT_SCORE_REFERENCES
    # 5 posts a week needs 5 posts inside the one-week minimum span.
    posts = [post(d / 5, comments=50, likes=100, views=5000) for d in range(5)]
    snap = snapshot(*posts, subscribers=10_000, daily_visitors=5_000)
    result = score_blog(snap, DEFAULT_SCORE_WEIGHTS, refs, NOW)
    assert result["score"] == 100.0
    assert result["breakdown"] == {
        name: round(100 * weight, 2) for name, weight in DEFAULT_SCORE_WEIGHTS.items()
    }


def test_only_posting_frequency_when_nothing_else_is_published() -> None:
    snap = snapshot(post(0), post(3), post(6))  # 3 posts in 6 days -> 3 per week
    result = score_blog(snap, DEFAULT_SCORE_WEIGHTS, DEFAULT_SCORE_REFERENCES, NOW)
    expected = round(100 * math.log1p(3) / math.log1p(5), 1)
    assert result["breakdown"].keys() == {"posts_per_week"}
    assert result["score"] == expected == 77.4


def test_zero_weight_leaves_metric_out() -> None:
    snap = snapshot(post(0, likes=100), subscribers=10)
    weights = dict(DEFAULT_SCORE_WEIGHTS, avg_likes=0.0)
    result = score_blog(snap, weights, DEFAULT_SCORE_REFERENCES, NOW)
    assert "avg_likes" not in result["breakdown"]
    assert result["metrics"]["avg_likes"] == 100.0


def test_no_posts_and_no_numbers_scores_zero() -> None:
    result = score_blog(snapshot(), DEFAULT_SCORE_WEIGHTS, DEFAULT_SCORE_REFERENCES, NOW)
    assert result["score"] == 0.0 and result["breakdown"] == {}
    assert result["metrics"]["posts_analyzed"] == 0
    assert result["metrics"]["posts_per_week"] is None


@pytest.mark.parametrize("seed", range(20))
def test_breakdown_sums_to_score(seed: int) -> None:
    rng = random.Random(seed)

    def maybe(top: int) -> int | None:
        return None if rng.random() < 0.3 else rng.randint(0, top)

    posts = [
        post(rng.uniform(0, 60), comments=maybe(80), likes=maybe(300), views=maybe(9000))
        for _ in range(rng.randint(1, 30))
    ]
    snap = snapshot(*posts, subscribers=maybe(20_000), daily_visitors=maybe(9_000))
    result = score_blog(snap, DEFAULT_SCORE_WEIGHTS, DEFAULT_SCORE_REFERENCES, NOW)
    assert 0 <= result["score"] <= 100
    assert sum(result["breakdown"].values()) == pytest.approx(result["score"], abs=0.1)
    assert json.loads(json.dumps(result)) == result


def test_naive_now_is_taken_as_utc() -> None:
    naive = datetime(2024, 5, 2, 8, 30)
    result = score_blog(snapshot(post(0)), DEFAULT_SCORE_WEIGHTS, DEFAULT_SCORE_REFERENCES, naive)
    assert result["analyzed_at"] == "2024-05-02T08:30:00+00:00"
