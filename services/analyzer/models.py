"""What a crawl saw: the blog's posts and published numbers, before any scoring."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class FeedPost(BaseModel):
    """One post as listed in the blog's feed."""

    model_config = ConfigDict(frozen=True)

    url: str
    title: str
    published: datetime
    comments: int | None = None


class PostSnapshot(BaseModel):
    """One post: its feed entry plus the numbers its page publishes (None when not published)."""

    model_config = ConfigDict(frozen=True)

    url: str
    title: str
    published: datetime
    # From the post page's structured data, then from the feed (slash:comments / thr:total).
    comments: int | None = None
    feed_comments: int | None = None
    likes: int | None = None
    views: int | None = None

    @property
    def best_comments(self) -> int | None:
        """Comment count from the page if it publishes one, else from the feed."""
        return self.comments if self.comments is not None else self.feed_comments


class BlogSnapshot(BaseModel):
    """Everything one crawl of a blog found."""

    model_config = ConfigDict(frozen=True)

    home_url: str
    feed_url: str
    posts: tuple[PostSnapshot, ...]
    subscribers: int | None = None
    daily_visitors: int | None = None
    fetched_at: datetime
