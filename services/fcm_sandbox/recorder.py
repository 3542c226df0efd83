"""What the sandbox accepted, kept small enough for millions of messages.

Per (campaign_id, token) only a count is stored, keyed by the token's hash (64 bits: a
collision among a few million tokens is vanishingly unlikely). The message itself is kept once
per distinct body (the token cut out), so a campaign of a million identical pushes stores one.
"""

import json
import time
from collections import Counter, deque
from typing import Any

# Stands in for the token inside a stored message body.
_TOKEN_MARK = b"\x00token\x00"
# The count lives in the low bits of a record; the index of the message body above them, so
# the common record (first body of its campaign) is a plain small int.
_COUNT_BITS = 32
_COUNT_MASK = (1 << _COUNT_BITS) - 1
RATE_WINDOW_S = 5
DUPLICATE_SAMPLES = 20


class _Campaign:
    __slots__ = ("accepted", "bodies", "body_ids", "duplicates", "last_seq", "records")

    def __init__(self) -> None:
        self.records: dict[int, int] = {}
        self.bodies: list[bytes] = []
        self.body_ids: dict[bytes, int] = {}
        self.accepted = 0
        self.duplicates = 0
        self.last_seq = 0


class Recorder:
    """Counts requests and outcomes, and remembers which token got which message how often."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.accepted = 0
        self.validated = 0
        self.rejected: Counter[str] = Counter()
        self.duplicate_messages = 0
        self.duplicate_pairs = 0
        self.duplicate_sample: list[dict[str, str | None]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_accept_at: float | None = None
        self.last_accept_at: float | None = None
        self._campaigns: dict[str | None, _Campaign] = {}
        self._seq = 0
        self._second = 0
        self._second_count = 0
        self._seconds: deque[tuple[int, int]] = deque(maxlen=RATE_WINDOW_S + 1)

    def accept(self, campaign_id: str | None, token: str, body: bytes) -> None:
        """Record a message FCM would have delivered."""
        now = time.time()
        self.accepted += 1
        if self.first_accept_at is None:
            self.first_accept_at = now
        self.last_accept_at = now
        second = int(now)
        if second != self._second:
            if self._second_count:
                self._seconds.append((self._second, self._second_count))
            self._second, self._second_count = second, 0
        self._second_count += 1

        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            campaign = self._campaigns[campaign_id] = _Campaign()
        campaign.accepted += 1
        self._seq += 1
        campaign.last_seq = self._seq
        template = body.replace(token.encode(), _TOKEN_MARK)
        body_id = campaign.body_ids.get(template)
        if body_id is None:
            body_id = campaign.body_ids[template] = len(campaign.bodies)
            campaign.bodies.append(template)
        key = hash(token)
        record = campaign.records.get(key, 0)
        count = (record & _COUNT_MASK) + 1
        campaign.records[key] = (body_id << _COUNT_BITS) | count
        if count > 1:
            campaign.duplicates += 1
            self.duplicate_messages += 1
            if count == 2:
                self.duplicate_pairs += 1
                if len(self.duplicate_sample) < DUPLICATE_SAMPLES:
                    self.duplicate_sample.append({"campaign_id": campaign_id, "token": token})

    def rate_per_s(self) -> float:
        """Messages accepted per second over the last few complete seconds."""
        now = int(time.time())
        start = now - RATE_WINDOW_S
        total = sum(count for second, count in self._seconds if start <= second < now)
        if start <= self._second < now:
            total += self._second_count
        return total / RATE_WINDOW_S

    def received(self, token: str) -> dict[str, Any]:
        """How many messages one token got (per campaign) and the last one it got."""
        key = hash(token)
        by_campaign: dict[str, int] = {}
        last: tuple[int, bytes] | None = None
        for campaign_id, campaign in self._campaigns.items():
            record = campaign.records.get(key)
            if record is None:
                continue
            by_campaign[campaign_id or ""] = record & _COUNT_MASK
            if last is None or campaign.last_seq > last[0]:
                last = (campaign.last_seq, campaign.bodies[record >> _COUNT_BITS])
        message = None
        if last is not None:
            body = last[1].replace(_TOKEN_MARK, json.dumps(token)[1:-1].encode())
            message = json.loads(body).get("message")
        return {
            "token": token,
            "count": sum(by_campaign.values()),
            "by_campaign": by_campaign,
            "last_message": message,
        }

    def stats(self) -> dict[str, Any]:
        """Totals, duplicates, rate and per-campaign counts."""
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "validate_only": self.validated,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "distinct": sum(len(c.records) for c in self._campaigns.values()),
            "duplicates": {
                "messages": self.duplicate_messages,
                "pairs": self.duplicate_pairs,
                "sample": self.duplicate_sample,
            },
            "rate_per_s": self.rate_per_s(),
            "first_accept_at": self.first_accept_at,
            "last_accept_at": self.last_accept_at,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "campaigns": {
                campaign_id or "": {
                    "accepted": campaign.accepted,
                    "distinct": len(campaign.records),
                    "duplicates": campaign.duplicates,
                }
                for campaign_id, campaign in self._campaigns.items()
            },
        }
