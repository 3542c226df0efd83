"""The gateway's hand-built task messages are what Celery itself would send."""

import json

from celery import Celery

from services.gateway.messaging import celery_message


def test_message_matches_celery_protocol_v2() -> None:
    message = celery_message.build(
        "analyzer.analyze_blog",
        "job-1",
        {"job_id": "job-1", "blog_url": "u"},
        priority=9,
        request_id="req-1",
        published_at=123.0,
    )
    celery = Celery(set_as_current=False)
    reference = celery.amqp.as_task_v2(
        "job-1", "analyzer.analyze_blog", args=(), kwargs={"job_id": "job-1", "blog_url": "u"}
    )
    missing = set(reference.headers) - set(message.headers)
    assert not missing, f"headers Celery sends but the gateway does not: {missing}"
    args, kwargs, embed = json.loads(message.body)
    assert args == [] and kwargs == {"job_id": "job-1", "blog_url": "u"}
    assert set(embed) == set(reference.body[2])
    assert message.headers["root_id"] == "job-1"
    assert message.headers["offload_request_id"] == "req-1"
    assert message.headers["offload_published_at"] == "123.0"
    assert message.correlation_id == "job-1"
    assert message.priority == 9


def test_the_publish_time_survives_amqp_header_encoding() -> None:
    """aio-pika encodes headers with pamqp, which narrows Python floats to 32 bits."""
    from pamqp import decode, encode

    published_at = 1795325856.0712
    message = celery_message.build(
        "t", "id-1", {}, priority=5, request_id=None, published_at=published_at
    )
    _, headers = decode.field_table(encode.field_table(message.headers))
    assert float(headers["offload_published_at"]) == published_at
