"""Container health checks: exit 0 when healthy, 1 when not, with one line saying why.

    python -m services.ops.healthcheck http http://127.0.0.1:8000/readyz
    python -m services.ops.healthcheck worker      # a pool's consumer heartbeat
    python -m services.ops.healthcheck beat        # beat's scheduler heartbeat

Docker runs this every few seconds in every container, so it stays cheap: `http` imports only
the standard library, the heartbeat modes add the settings but never Celery.
"""

import argparse
import sys
import urllib.error
import urllib.request
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Docker reserves exit code 2; a broken check is plainly unhealthy.
        self.exit(1, f"unhealthy: {message}\n")


def parser() -> argparse.ArgumentParser:
    """The command line: a mode and its arguments."""
    root = _Parser(prog="python -m services.ops.healthcheck", description=__doc__)
    modes = root.add_subparsers(dest="mode", required=True, parser_class=_Parser)
    http = modes.add_parser("http", help="GET a URL; healthy on a 2xx answer")
    http.add_argument("url")
    http.add_argument("--timeout", type=float, default=1.5, help="seconds (default 1.5)")
    for role in ("worker", "beat"):
        mode = modes.add_parser(role, help=f"the {role}'s heartbeat file is fresh")
        mode.add_argument(
            "--max-age", type=float, help="seconds (default: six heartbeat intervals)"
        )
    return root


def check_http(url: str, timeout_s: float) -> tuple[bool, str]:
    """GET `url` directly (never through a proxy from the environment); 2xx is healthy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"GET {url} answered {exc.code}"
    except urllib.error.URLError as exc:
        return False, f"GET {url} failed: {exc.reason}"
    except OSError as exc:  # a timeout or reset while reading the answer
        return False, f"GET {url} failed: {exc!r}"
    return 200 <= status < 300, f"GET {url} answered {status}"


def check_heartbeat(role: str, max_age_s: float | None) -> tuple[bool, str]:
    """The role's heartbeat file exists and was touched within `max_age_s`."""
    from services.common import heartbeat_file
    from services.common.config import ServiceSettings

    try:
        settings = ServiceSettings()
    except ValueError as exc:
        return False, f"invalid settings: {' '.join(str(exc).split())}"
    path = heartbeat_file.path_for(settings.heartbeat_file, role)
    limit = (
        max_age_s
        if max_age_s is not None
        else heartbeat_file.max_age_s(settings.heartbeat_interval_s)
    )
    age = heartbeat_file.age_s(path)
    if age is None:
        return False, f"no {role} heartbeat at {path}"
    if age > limit:
        return False, f"{role} heartbeat at {path} is {age:.1f} s old (limit {limit:g} s)"
    return True, f"{role} heartbeat {age:.1f} s old"


def main(argv: list[str] | None = None) -> int:
    """Run the check `argv` names, print its verdict, return the exit code."""
    args = parser().parse_args(argv)
    if args.mode == "http":
        healthy, reason = check_http(args.url, args.timeout)
    else:
        healthy, reason = check_heartbeat(args.mode, args.max_age)
    print(f"{'healthy' if healthy else 'unhealthy'}: {reason}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
