"""Failure and latency injection: which tokens fail, with which FCM error, how many times."""

from dataclasses import dataclass, field
from typing import Any

from services.fcm_sandbox.fcm_errors import FCM_ERRORS

# Retry-After sent with QUOTA_EXCEEDED when the rule names none (FCM always sends one).
DEFAULT_QUOTA_RETRY_AFTER_S = 1.0


class RuleError(ValueError):
    """A rule posted to /sandbox/rules is malformed."""


@dataclass
class Rule:
    """Matches tokens by exact list, by prefix, or (neither given) every token."""

    id: int
    tokens: frozenset[str] | None = None
    prefix: str | None = None
    error: str | None = None
    # Fail the first `times` matching requests of each token, then let them through.
    times: int | None = None
    retry_after_s: float | None = None
    latency_s: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)

    def matches(self, token: str) -> bool:
        if self.tokens is not None and token not in self.tokens:
            return False
        return self.prefix is None or token.startswith(self.prefix)

    def take_failure(self, token: str) -> bool:
        """True when this request of `token` is one the rule fails (and count it)."""
        if self.error is None:
            return False
        if self.times is None:
            self.failed[token] = self.failed.get(token, 0) + 1
            return True
        done = self.failed.get(token, 0)
        if done >= self.times:
            return False
        self.failed[token] = done + 1
        return True

    def retry_after(self) -> float | None:
        if self.retry_after_s is None and self.error == "QUOTA_EXCEEDED":
            return DEFAULT_QUOTA_RETRY_AFTER_S
        return self.retry_after_s

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tokens": sorted(self.tokens) if self.tokens is not None else None,
            "prefix": self.prefix,
            "error": self.error,
            "times": self.times,
            "retry_after_s": self.retry_after_s,
            "latency_s": self.latency_s,
            "failed": sum(self.failed.values()),
        }


def parse_rule(rule_id: int, spec: Any) -> Rule:
    """A Rule from the JSON body of POST /sandbox/rules."""
    if not isinstance(spec, dict):
        raise RuleError("a rule is a JSON object")
    unknown = spec.keys() - {"tokens", "prefix", "error", "times", "retry_after_s", "latency_s"}
    if unknown:
        raise RuleError(f"unknown rule fields: {sorted(unknown)}")
    tokens = spec.get("tokens")
    if tokens is not None and (
        not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)
    ):
        raise RuleError("tokens must be a list of strings")
    prefix = spec.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise RuleError("prefix must be a string")
    error = spec.get("error")
    if error is not None and error not in FCM_ERRORS:
        raise RuleError(f"error must be one of {sorted(FCM_ERRORS)}")
    times = spec.get("times")
    if times is not None and (not isinstance(times, int) or times < 0):
        raise RuleError("times must be a non-negative integer or null")
    retry_after = _number(spec, "retry_after_s")
    latency = _number(spec, "latency_s")
    return Rule(
        id=rule_id,
        tokens=frozenset(tokens) if tokens is not None else None,
        prefix=prefix,
        error=error,
        times=times,
        retry_after_s=retry_after,
        latency_s=latency or 0.0,
    )


def _number(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RuleError(f"{name} must be a non-negative number")
    return float(value)
