"""`offload devices …`: client commands that talk to a gateway over HTTP."""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

CHUNK_BYTES = 256 * 1024
CONTENT_TYPES = {
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
}

devices_cli = typer.Typer(help="Device registry (through the gateway).", no_args_is_help=True)


class ClientSettings(BaseSettings):
    """Where the gateway is and the key to use (OFFLOAD_GATEWAY_URL, OFFLOAD_API_KEY)."""

    model_config = SettingsConfigDict(env_prefix="OFFLOAD_", extra="ignore", frozen=True)

    gateway_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None


def content_type_for(path: Path) -> str:
    """The import Content-Type a file's extension implies."""
    try:
        return CONTENT_TYPES[path.suffix.lower()]
    except KeyError:
        raise typer.BadParameter(
            f"cannot tell the format of {path.name}: use .ndjson, .jsonl or .csv"
        ) from None


def _chunks(stream: BinaryIO, progress: Progress, task: Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        progress.update(task, advance=len(chunk))
        yield chunk


@devices_cli.command("import")
def import_devices(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    gateway_url: Annotated[
        str | None, typer.Option(help="Gateway base URL (env OFFLOAD_GATEWAY_URL)")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (env OFFLOAD_API_KEY)")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the gateway")] = 600.0,
) -> None:
    """Stream an NDJSON or CSV file of devices to the gateway; exit 1 if any row was rejected."""
    import httpx  # only this command needs an HTTP client

    settings = ClientSettings()
    url = (gateway_url or settings.gateway_url).rstrip("/") + "/v1/devices/import"
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise typer.BadParameter("pass --api-key or set OFFLOAD_API_KEY")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type_for(file)}
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with (
        file.open("rb") as stream,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
        try:
            response = httpx.post(
                url,
                content=_chunks(stream, progress, task),
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=10.0),
            )
        except httpx.HTTPError as exc:
            console.print(f"[red]import failed: {exc}")
            raise typer.Exit(2) from exc
    if response.status_code != 200:
        console.print(f"[red]import failed: HTTP {response.status_code} {response.text}")
        raise typer.Exit(2)
    summary = response.json()
    typer.echo(
        f"received {summary['received']:,}, inserted {summary['inserted']:,}, "
        f"updated {summary['updated']:,}, rejected {summary['rejected']:,}"
    )
    for error in summary["errors"]:
        typer.echo(f"line {error['line']}: {error['error']}")
    if summary["rejected"] > len(summary["errors"]):
        typer.echo(f"… and {summary['rejected'] - len(summary['errors']):,} more rejected lines")
    if summary["rejected"]:
        raise typer.Exit(1)
