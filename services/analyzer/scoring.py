"""The blogger score: published numbers, log-normalised against references, weighted to 0..100.

- posts_per_week = posts / max(1 week, newest date - oldest date); a single post or posts all
  on one day therefore count as that many posts in one week, and no post gives None.
- avg_comments / avg_likes / avg_views average only the posts that publish that number
  (comments from the post page, else from the feed); None when no post publishes it.
- Each metric x with reference r scores min(1, log1p(x) / log1p(r)); None metrics are left out
  and the weights of the remaining metrics are scaled to sum to 1, so the breakdown's points
  (100 * weight share * normalised value) add up to the score.
"""

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.analyzer.models import BlogSnapshot

SCORED_METRICS = (
    "posts_per_week",
    "avg_comments",
    "avg_likes",
    "avg_views",
    "subscribers",
    "daily_visitors",
)
_WEEK = timedelta(weeks=1)


def posts_per_week(published: Iterable[datetime]) -> float | None:
    """Posts per week over the span from the oldest to the newest post, at least one week."""
    dates = sorted(published)
    if not dates:
        return None
    span = max(dates[-1] - dates[0], _WEEK)
    return len(dates) / (span / _WEEK)


def _average(values: Iterable[int | None]) -> float | None:
    published = [value for value in values if value is not None]
    return sum(published) / len(published) if published else None


def normalise(value: float, reference: float) -> float:
    """Map a non-negative value to 0..1, saturating at the reference on a log scale."""
    if value <= 0:
        return 0.0
    return min(1.0, math.log1p(value) / math.log1p(reference))


def _round(value: float | int | None) -> float | int | None:
    return round(value, 2) if isinstance(value, float) else value


def blog_metrics(snapshot: BlogSnapshot) -> dict[str, float | int | None]:
    """Compute the unrounded metrics of a crawl."""
    posts = snapshot.posts
    return {
        "posts_analyzed": len(posts),
        "posts_per_week": posts_per_week(post.published for post in posts),
        "avg_comments": _average(post.best_comments for post in posts),
        "avg_likes": _average(post.likes for post in posts),
        "avg_views": _average(post.views for post in posts),
        "subscribers": snapshot.subscribers,
        "daily_visitors": snapshot.daily_visitors,
    }


def score_blog(
    snapshot: BlogSnapshot,
    weights: Mapping[str, float],
    references: Mapping[str, float],
    now: datetime,
) -> dict[str, Any]:
    """Score a crawl: 0..100 with per-metric points, the metrics and when it was computed."""
    metrics = blog_metrics(snapshot)
    scored = {
        name: float(value)
        for name in SCORED_METRICS
        if (value := metrics[name]) is not None and weights.get(name, 0.0) > 0
    }
    total_weight = sum(weights[name] for name in scored)
    points = {
        name: 100.0 * weights[name] / total_weight * normalise(value, references[name])
        for name, value in scored.items()
    }
    analyzed_at = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return {
        "blog_url": snapshot.home_url,
        "score": round(sum(points.values()), 1),
        "metrics": {name: _round(value) for name, value in metrics.items()},
        "breakdown": {name: round(value, 2) for name, value in points.items()},
        "analyzed_at": analyzed_at.astimezone(UTC).isoformat(),
    }
