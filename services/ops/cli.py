"""`offload`: operator commands (database, topology, dead-letter queues)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from services.common import db, topology
from services.common.config import ServiceSettings
from services.ops import deadletters
from services.ops.client_cli import devices_cli

cli = typer.Typer(help="Offload operations.", no_args_is_help=True)
db_cli = typer.Typer(help="Database.", no_args_is_help=True)
topology_cli = typer.Typer(help="AMQP topology.", no_args_is_help=True)
dlq_cli = typer.Typer(help="Dead-letter queues.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(topology_cli, name="topology")
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(devices_cli, name="devices")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create the database if missing and apply every migration."""
    settings = ServiceSettings()
    if db.ensure_database(settings.database_url):
        typer.echo("created database")
    db.migrate(settings.database_url)
    typer.echo("database at head")


@topology_cli.command("declare")
def topology_declare(
    management_url: Annotated[
        str | None,
        typer.Option(
            envvar="OFFLOAD_RABBITMQ_MANAGEMENT_URL",
            help="Management API (http://user:pass@host:15672) to set policies through too",
        ),
    ] = None,
) -> None:
    """Declare exchanges, queues and dead-letter queues (idempotent), and policies if asked."""
    amqp_url = ServiceSettings().amqp_url
    topology.declare(amqp_url)
    typer.echo(f"declared {len(topology.QUEUES)} queues and their dead-letter queues")
    if management_url:
        vhost = topology.pika_parameters(amqp_url).virtual_host
        topology.apply_policies(management_url, vhost)
        typer.echo(f"set {len(topology.POLICIES)} policies on vhost {vhost!r}")


@topology_cli.command("export")
def topology_export(
    output: Annotated[Path | None, typer.Option(help="File to write; stdout if omitted")] = None,
) -> None:
    """Print the topology as RabbitMQ definitions (deploy/rabbitmq/ is built from it)."""
    text = json.dumps(topology.definitions(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


@dlq_cli.command("list")
def dlq_list(queue: str, limit: int = 20) -> None:
    """Show dead-lettered messages of a service queue with their reasons (they stay queued)."""
    for letter in deadletters.peek(ServiceSettings().amqp_url, topology.queue_named(queue), limit):
        typer.echo(json.dumps(letter))


@dlq_cli.command("redrive")
def dlq_redrive(queue: str, limit: int = 1000) -> None:
    """Move dead-lettered messages back to their queue and re-open their jobs."""
    settings = ServiceSettings()
    moved = deadletters.redrive(settings, topology.queue_named(queue), limit)
    typer.echo(f"re-drove {moved} messages to {queue}")


def main() -> None:
    cli()
