"""Prometheus metrics of the pusher domain (multiprocess mode is configured elsewhere)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "offload_pusher_messages",
    "Pushes by outcome (sent, failed, retried: a retryable failure) and FCM error code.",
    ["outcome", "code"],
)

FCM_REQUEST_DURATION = Histogram(
    "offload_pusher_fcm_request_duration_seconds",
    "Wall time of one FCM send request, answered or not.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

DEVICES_DEACTIVATED = Counter(
    "offload_pusher_devices_deactivated_total",
    "Devices deactivated because FCM reported their token unregistered or invalid",
)

BATCH_DURATION = Histogram(
    "offload_pusher_batch_duration_seconds",
    "Wall time of one batch pass (sending and recording up to 500 devices)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
CAMPAIGNS_ACTIVE = Gauge(
    "offload_pusher_campaigns_active",
    "Campaigns processing (as last seen by any pool process when a batch settled)",
    multiprocess_mode="mostrecent",
)
