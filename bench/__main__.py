"""`python -m bench [gateway] [analyzer] [devices] [pusher] [pdfgen] [--quick]`: run and record
benchmarks.

Needs the local RabbitMQ, Postgres and Redis (`make bootstrap` starts them). Each benchmark
writes bench/results/<name>.json; docs/benchmarks.md is rewritten from the latest results.
"""

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import analyzer, devices, gateway, pdfgen, pusher, report, servers

BENCHMARKS = ("gateway", "analyzer", "devices", "pusher", "pdfgen")


def run_one(name: str, mode: str, log_dir: Path, pdf_100k: bool = False) -> dict[str, Any]:
    """One benchmark in `mode` (full, quick or tiny), wrapped with when and where it ran."""
    started = datetime.now(UTC)
    machine = servers.machine()
    clock = time.perf_counter()
    if name == "gateway":
        plan_g = {"full": gateway.FULL, "quick": gateway.QUICK, "tiny": gateway.TINY}[mode]
        result = gateway.run(plan_g, log_dir)
    elif name == "devices":
        plan_d = {"full": devices.FULL, "quick": devices.QUICK, "tiny": devices.TINY}[mode]
        result = devices.run(plan_d, log_dir)
    elif name == "pusher":
        plan_p = {"full": pusher.FULL, "quick": pusher.QUICK, "tiny": pusher.TINY}[mode]
        result = pusher.run(plan_p, log_dir)
    elif name == "pdfgen":
        full = pdfgen.FULL_100K if pdf_100k else pdfgen.FULL
        plan_f = {"full": full, "quick": pdfgen.QUICK, "tiny": pdfgen.TINY}[mode]
        result = pdfgen.run(plan_f, log_dir)
    else:
        plan_a = {"full": analyzer.FULL, "quick": analyzer.QUICK, "tiny": analyzer.TINY}[mode]
        result = analyzer.run(plan_a, log_dir)
    return {
        "name": name,
        "started_at": started.isoformat(timespec="seconds"),
        "quick": mode != "full",
        "mode": mode,
        "elapsed_s": round(time.perf_counter() - clock, 1),
        "machine": machine,
        "result": result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer blogs")
    parser.add_argument(
        "--pdf-100k", action="store_true", help="pdfgen (full mode): a 100,000-page report too"
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--logs", type=Path, help="keep service logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    names = args.benchmarks or list(BENCHMARKS)
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as tmp:
        log_dir = args.logs or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"running {name} ({mode}); service logs in {log_dir}", flush=True)
            data = run_one(name, mode, log_dir, pdf_100k=args.pdf_100k)
            path = report.write_json(name, data)
            print(report.console(name, data["result"]), flush=True)
            print(f"wrote {path.relative_to(report.ROOT)}", flush=True)
    if not args.no_docs:
        print(f"wrote {report.render_docs().relative_to(report.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
