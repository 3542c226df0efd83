"""Which devices a campaign targets, as SQL over the active devices."""

from typing import Any

from psycopg import sql


def target_filter(target: dict[str, Any]) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE fragment (after `active AND ...`) and parameters for a campaign target."""
    if target.get("all"):
        return sql.SQL("TRUE"), {}
    if "user_ids" in target:
        return sql.SQL("user_id = ANY(%(user_ids)s)"), {"user_ids": list(target["user_ids"])}
    if "topic" in target:
        return sql.SQL("topics @> ARRAY[%(topic)s]::text[]"), {"topic": target["topic"]}
    raise ValueError(f"unknown campaign target: {target!r}")
