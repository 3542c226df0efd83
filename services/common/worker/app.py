"""The Celery app every worker pool is built from: same reliability settings, own queues."""

from celery import Celery
from kombu import Exchange, Queue

from services.common import topology
from services.common.config import ServiceSettings
from services.common.worker import heartbeat


def kombu_queues(service: str | None) -> list[Queue]:
    """kombu declarations of a service's queues (all queues for None), matching topology.py."""
    exchange = Exchange(topology.TASK_EXCHANGE, type="direct", durable=True)
    specs = topology.QUEUES if service is None else topology.queues_for(service)
    return [
        Queue(
            spec.name,
            exchange,
            routing_key=spec.name,
            durable=True,
            queue_arguments=spec.arguments(),
        )
        for spec in specs
    ]


def create_celery(
    service: str | None,
    settings: ServiceSettings,
    *,
    include: tuple[str, ...] = (),
    soft_time_limit_s: int = 60,
    time_limit_s: int = 90,
    prefetch_multiplier: int = 1,
) -> Celery:
    """A Celery app consuming only `service`'s queues (every queue when None, for beat)."""
    queues = kombu_queues(service)
    app = Celery(
        f"offload-{service or 'beat'}",
        broker=settings.amqp_url,
        backend=settings.redis_url,
        include=list(include),
        set_as_current=False,
    )
    app.conf.update(
        task_queues=queues,
        task_default_queue=queues[0].name,
        task_default_exchange=topology.TASK_EXCHANGE,
        task_default_routing_key=queues[0].routing_key,
        task_create_missing_queues=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # At-least-once: ack after the task ran; a killed child puts the message back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=prefetch_multiplier,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=soft_time_limit_s,
        task_time_limit=time_limit_s,
        task_default_priority=5,
        task_inherit_parent_priority=True,
        # Job state lives in Postgres; the Redis backend only serves chords that ask for it.
        task_ignore_result=True,
        result_expires=24 * 3600,
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=False,
        enable_utc=True,
    )
    heartbeat.configure(app, settings, beat=service is None)
    return app


def worker_app(service: str, settings: ServiceSettings, *, tasks_module: str) -> Celery:
    """A service's worker app: its queues, its settings, its time limits, its metrics port."""
    from services.common.worker import signals

    app = create_celery(
        service,
        settings,
        include=(tasks_module,),
        soft_time_limit_s=settings.task_soft_time_limit_s,
        time_limit_s=settings.task_time_limit_s,
    )
    app.conf["offload_settings"] = settings
    signals.serve_metrics(app, settings.metrics_port, settings.metrics_bind)
    return app
