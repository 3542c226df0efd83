"""The container images, checked without a Docker engine.

Every image is built from the one Dockerfile at the repository root with `--build-arg
IMAGE=<name>`. For each image the stages that build produces are resolved from the Dockerfile
the way the builder resolves them (global ARGs in FROM lines, a stage's own ARGs and the ENV it
inherits in its instructions) and held to the image contract (stages, user, health check,
command, environment, ports); each lock file is resolved again from pyproject.toml; and each
image's runtime venv is built the way its builder stage builds it (uv, the lock file, then the
project with --no-deps) to import everything the image runs and to list the native libraries it
needs. uv works from its cache first and goes to the index only for what the cache lacks.
"""

import fnmatch
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import extract_key_values

from services.ops import healthcheck
from services.pdfgen import fonts
from tests.support.deployment import DOCKERFILE

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
BASE_IMAGE = "python:3.11-slim-bookworm"
USER_ID = "10001"
METRICS_DIR = "/run/offload/metrics"


@dataclass(frozen=True)
class Image:
    # The IMAGE build argument: it names the image's stage and its lock file
    # (requirements/<name>.txt).
    name: str
    healthcheck: list[str]
    ports: set[str]
    pool: bool
    # Imported in the image's venv: every module its processes load.
    modules: tuple[str, ...]
    # Worker apps whose Celery `include` modules (the tasks) are imported too.
    celery_apps: tuple[str, ...]
    # Locked packages the image must carry, and others' packages it must not.
    needs: set[str]
    forbidden: set[str]


IMAGES = [
    Image(
        "gateway",
        ["http", "http://127.0.0.1:8000/readyz"],
        {"8000"},
        pool=False,
        modules=("services.gateway.__main__", "services.gateway.app"),
        celery_apps=(),
        needs={"fastapi", "uvicorn", "uvloop", "aio-pika", "boto3"},
        forbidden={"celery", "reportlab", "rl-accel", "pypdf", "firebase-admin", "extruct"},
    ),
    Image(
        "analyzer",
        ["worker"],
        {"9100"},
        pool=True,
        modules=("services.analyzer.__main__", "services.analyzer.worker"),
        celery_apps=("services.analyzer.worker",),
        needs={"celery", "extruct", "feedparser", "lxml"},
        forbidden={"fastapi", "aio-pika", "reportlab", "pypdf", "firebase-admin", "boto3"},
    ),
    Image(
        "pusher",
        ["worker"],
        {"9100", "9099"},
        pool=True,
        modules=(
            "services.pusher.__main__",
            "services.pusher.worker",
            "services.fcm_sandbox.__main__",
            "services.fcm_sandbox.app",
        ),
        celery_apps=("services.pusher.worker",),
        needs={"celery", "firebase-admin", "uvicorn", "uvloop", "httptools"},
        forbidden={"fastapi", "aio-pika", "reportlab", "pypdf", "extruct", "boto3"},
    ),
    Image(
        "pdfgen",
        ["worker"],
        {"9100"},
        pool=True,
        modules=("services.pdfgen.__main__", "services.pdfgen.worker", "_rl_accel"),
        celery_apps=("services.pdfgen.worker",),
        needs={"celery", "reportlab", "rl-accel", "pypdf", "boto3"},
        forbidden={"fastapi", "uvicorn", "aio-pika", "firebase-admin", "extruct"},
    ),
    Image(
        "platform",
        ["beat"],
        {"9100"},
        pool=False,
        modules=("services.ops.beat", "services.ops.cli", "services.ops.exporter"),
        celery_apps=(),
        needs={"celery", "alembic", "pika"},
        forbidden={
            "fastapi",
            "uvicorn",
            "aio-pika",
            "reportlab",
            "pypdf",
            "firebase-admin",
            "extruct",
            "boto3",
        },
    ),
]
BY_NAME = {image.name: image for image in IMAGES}
each_image = pytest.mark.parametrize("image", IMAGES, ids=[image.name for image in IMAGES])


# --- The Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One FROM and what follows it, as written (comments left out)."""

    name: str | None
    base: str
    instructions: tuple[tuple[str, str], ...]


@functools.cache
def dockerfile() -> tuple[dict[str, str | None], tuple[Stage, ...]]:
    """The Dockerfile's global ARGs (name -> default, None without one) and its stages."""
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for item in DockerfileParser(path=str(DOCKERFILE)).structure:
        kind, value = item["instruction"], str(item["value"])
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            words = value.split()
            named = len(words) == 3 and words[1].lower() == "as"
            stages.append(Stage(words[2].lower() if named else None, words[0], ()))
        elif not stages:
            assert kind == "ARG", f"{kind} before the first FROM"
            key, eq, default = value.partition("=")
            global_args[key] = default if eq else None
        else:
            last = stages[-1]
            stages[-1] = Stage(last.name, last.base, (*last.instructions, (kind, value)))
    return global_args, tuple(stages)


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# Instructions the builder (or, for RUN, the shell) expands variables in. CMD, ENTRYPOINT and
# HEALTHCHECK are exec form here: nothing expands them.
_EXPANDED = frozenset({"COPY", "ADD", "RUN", "WORKDIR", "USER", "EXPOSE", "STOPSIGNAL", "LABEL"})


def _expand(text: str, variables: dict[str, str]) -> str:
    """Variables replaced as the builder does; an undeclared one is empty."""
    return _VARIABLE.sub(lambda m: variables.get(m[1] or m[2], ""), text)


@dataclass(frozen=True)
class Build:
    """What `docker build --build-arg IMAGE=<image>` produces for one stage: the registry image
    at its root, the stages stacked on it (root first) and their instructions, expanded."""

    base: str
    stages: tuple[str | None, ...]
    instructions: tuple[tuple[str, str], ...]
    env: dict[str, str]


def build(image: Image, target: str | None = None) -> Build:
    """`target` (a stage name), or the image itself: the Dockerfile's last stage."""
    global_args, stages = dockerfile()
    build_args = {"IMAGE": image.name}
    # What FROM lines see: the global ARGs, given a value by the build or by their default.
    from_args = {k: build_args.get(k, v or "") for k, v in global_args.items()}
    index = len(stages) - 1 if target is None else [s.name for s in stages].index(target)
    chain = [stages[index]]
    while True:
        base = _expand(chain[0].base, from_args).lower()
        # A FROM names an earlier stage, or else an image from a registry.
        earlier = [s for s in stages[: stages.index(chain[0])] if s.name == base]
        if not earlier:
            break
        chain.insert(0, earlier[-1])
    env: dict[str, str] = {}
    instructions: list[tuple[str, str]] = []
    for stage in chain:
        args: dict[str, str] = {}  # ARGs are per stage; ENV is inherited by a stage built on it
        for kind, value in stage.instructions:
            if kind == "ARG":
                key, eq, default = value.partition("=")
                if key in build_args:
                    args[key] = build_args[key]
                elif eq:
                    args[key] = _expand(default, {**args, **env})
                elif global_args.get(key) is not None:
                    args[key] = str(global_args[key])
            elif kind == "ENV":
                pairs = extract_key_values(
                    env_replace=True, args=args, envs=env, instruction_value=value
                )
                env.update(pairs)
                value = " ".join(f"{k}={v}" for k, v in pairs)
            elif kind in _EXPANDED:
                value = _expand(value, {**args, **env})
            instructions.append((kind, value))
    return Build(
        _expand(chain[0].base, from_args),
        tuple(s.name for s in chain),
        tuple(instructions),
        env,
    )


def values(built: Build, name: str) -> list[str]:
    return [value for kind, value in built.instructions if kind == name]


def copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's --flags, sources and destination."""
    words = value.split()
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def builder(image: Image) -> Build:
    """The stage the image copies its venv and sources from."""
    (name,) = {copy_args(v)[0].get("from") for v in values(build(image), "COPY")}
    assert name is not None, "the runtime copies from the build context"
    return build(image, name)


def test_the_image_argument_alone_selects_each_image() -> None:
    global_args, stages = dockerfile()
    # IMAGE, without a default: a build that forgets it stops rather than building some image.
    assert global_args == {"IMAGE": None}
    assert (stages[-1].name, stages[-1].base) == (None, "${IMAGE}")
    assert set(BY_NAME) <= {stage.name for stage in stages}
    for image in IMAGES:
        # Each image stacks its own stage and no other image's.
        assert [s for s in build(image).stages if s in BY_NAME] == [image.name]
    # Every stage goes into some image: no copy left over that nothing builds.
    used = {s for image in IMAGES for s in (*build(image).stages, *builder(image).stages)}
    assert used == {stage.name for stage in stages}


@each_image
def test_builds_in_stages_and_runs_as_offload(image: Image) -> None:
    runtime, build_stage = build(image), builder(image)
    assert (runtime.base, build_stage.base) == (BASE_IMAGE, BASE_IMAGE)
    # uv, the build's caches and the project metadata stay in the builder.
    assert not set(build_stage.stages) & set(runtime.stages)
    # Numeric, so Kubernetes' runAsNonRoot can verify it; the user exists with that uid.
    assert values(runtime, "USER")[-1].split(":") == [USER_ID, USER_ID]
    setup = " ".join(values(runtime, "RUN"))
    assert f"useradd --system --uid {USER_ID} --gid offload" in setup
    assert f"install -d -o offload -g offload /run/offload {METRICS_DIR}" in setup
    # The runtime takes only the venv and the sources from the builder.
    copies = [copy_args(v) for v in values(runtime, "COPY")]
    assert [(flags.get("from"), sources) for flags, sources, _ in copies] == [
        ("builder", ["/opt/venv"]),
        ("builder", ["/app/services"]),
    ]
    assert values(runtime, "WORKDIR") == ["/app"]


@each_image
def test_installs_its_own_lock_and_the_project_without_dependencies(image: Image) -> None:
    stage = builder(image)
    locks = [s for v in values(stage, "COPY") for s in copy_args(v)[1] if "requirements" in s]
    assert locks == [f"requirements/{image.name}.txt"]
    installs = [v for v in values(stage, "RUN") if "uv pip install" in v]
    assert len(installs) == 2, installs
    assert f"-r requirements/{image.name}.txt" in installs[0]
    assert "--no-deps -e ." in installs[1]
    assert all("--python /opt/venv/bin/python" in v for v in installs)


@each_image
def test_copies_only_what_exists_in_the_build_context(image: Image) -> None:
    patterns = dockerignore()
    for value in values(builder(image), "COPY") + values(build(image), "COPY"):
        flags, sources, _ = copy_args(value)
        if "from" in flags:
            continue
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{image.name}: COPY {source}: no such path"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
            kept = [p for p in files if not ignored(str(p.relative_to(ROOT)), patterns)]
            assert kept, f"{image.name}: COPY {source}: left out by .dockerignore"


@each_image
def test_runtime_environment_and_ports(image: Image) -> None:
    runtime = build(image)
    env = runtime.env
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == METRICS_DIR
    if image.pool or image.name == "platform":
        assert env["OFFLOAD_METRICS_PORT"] == "9100"
        assert env["OFFLOAD_METRICS_BIND"] == "0.0.0.0"
    if image.name == "gateway":
        assert env["OFFLOAD_GATEWAY_HOST"] == "0.0.0.0"
        assert env["OFFLOAD_GATEWAY_PORT"] == "8000"
        assert "OFFLOAD_METRICS_PORT" not in env
    assert {port for v in values(runtime, "EXPOSE") for port in v.split()} == image.ports


@each_image
def test_signals_reach_the_service(image: Image) -> None:
    runtime = build(image)
    assert values(runtime, "STOPSIGNAL") == ["SIGTERM"]
    # tini (PID 1) forwards SIGTERM to the exec-form command and reaps orphaned children.
    assert [json.loads(v) for v in values(runtime, "ENTRYPOINT")] == [["tini", "--"]]
    assert "apt-get install -y --no-install-recommends tini" in " ".join(values(runtime, "RUN"))
    (cmd,) = values(runtime, "CMD")
    # Setting ENTRYPOINT clears an inherited CMD: it must come first.
    kinds = [kind for kind, _ in runtime.instructions]
    assert kinds.index("ENTRYPOINT") < kinds.index("CMD")
    argv = json.loads(cmd)  # exec form: a JSON array, no shell in between
    assert argv[:2] == ["python", "-m"]
    assert runnable_module(argv[2]), f"{argv[2]} cannot run with python -m"


@each_image
def test_only_pdfgen_installs_the_report_fonts_where_it_looks_for_them(image: Image) -> None:
    """The Debian package holding fonts.DEFAULT_*_PATH (asked of dpkg) is in pdfgen's image."""
    owners = set()
    for path in (fonts.DEFAULT_REGULAR_PATH, fonts.DEFAULT_BOLD_PATH):
        found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, timeout=30)
        assert found.returncode == 0, f"no Debian package holds {path}: {found.stderr}"
        owners.add(found.stdout.split(":")[0])
    assert owners == {"fonts-nanum"}
    installs = " ".join(values(build(image), "RUN"))
    assert ("fonts-nanum" in installs) == (image.name == "pdfgen")


@each_image
def test_healthcheck_runs_a_real_check(image: Image) -> None:
    (value,) = values(build(image), "HEALTHCHECK")
    options, command = re.split(r"\s+CMD\s+", value, maxsplit=1)
    assert {"--interval", "--timeout", "--start-period", "--retries"} == {
        option.split("=")[0] for option in options.split()
    }
    argv = json.loads(command)
    assert argv[:3] == ["python", "-m", "services.ops.healthcheck"]
    assert importlib.util.find_spec(argv[2]) is not None
    args = healthcheck.parser().parse_args(argv[3:])
    assert argv[3:] == image.healthcheck
    if args.mode == "http":
        port = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/.*", args.url)
        assert port is not None and port.group(1) in image.ports


def runnable_module(name: str) -> bool:
    """`python -m name` runs something: a package with __main__, or a module with a main guard."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return False
    if spec.submodule_search_locations is not None:
        return importlib.util.find_spec(f"{name}.__main__") is not None
    return 'if __name__ == "__main__":' in Path(spec.origin).read_text()


# --- .dockerignore -------------------------------------------------------------------------------


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the context: the last pattern that matches the path
    or one of its parent folders decides (a `!` pattern keeps it)."""
    parts = path.split("/")
    verdict = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern_parts = pattern.removeprefix("!").strip("/").split("/")
        if any(_match(pattern_parts, parts[:n]) for n in range(1, len(parts) + 1)):
            verdict = not keep
    return verdict


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])
    )


def test_dockerignore_sends_only_sources_and_locks() -> None:
    patterns = dockerignore()
    for path in (
        ".venv/bin/python",
        "var/storage/report.pdf",
        ".git/HEAD",
        "tests/conftest.py",
        "bench/__main__.py",
        "docs/operations.md",
        "offload.egg-info/PKG-INFO",
        "services/gateway/__pycache__/app.cpython-311.pyc",
        ".mypy_cache/3.11/services/gateway/app.data.json",
    ):
        assert ignored(path, patterns), f"{path} would be sent to the builder"
    for path in (
        "services/gateway/app.py",
        "services/common/migrations/script.py.mako",
        "pyproject.toml",
        "README.md",
        *(f"requirements/{image.name}.txt" for image in IMAGES),
    ):
        assert not ignored(path, patterns), f"{path} would be missing from the build"


# --- Lock files ----------------------------------------------------------------------------------


def offline_first(command: list[str], **env: str) -> None:
    """Run a uv command from uv's cache alone, then with the index if the cache lacks something."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    for attempt in ({"UV_OFFLINE": "1"}, {}):
        result = subprocess.run(
            command,
            cwd=ROOT,
            env={**base, **env, **attempt},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode == 0:
            return
    raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def uv(*args: str) -> None:
    offline_first([str(UV), *args])


def without_header(text: str) -> list[str]:
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return lines


def test_each_lock_is_what_pyproject_resolves_to(tmp_path: Path) -> None:
    locks = sorted(p.name for p in (ROOT / "requirements").glob("*.txt"))
    assert locks == sorted(f"{image.name}.txt" for image in IMAGES)
    for name in locks:  # uv keeps these pins unless pyproject.toml no longer allows them
        shutil.copy(ROOT / "requirements" / name, tmp_path / name)
    offline_first(["bash", "requirements/compile.sh", str(tmp_path)], UV=str(UV))
    for name in locks:
        fresh = without_header((tmp_path / name).read_text())
        committed = without_header((ROOT / "requirements" / name).read_text())
        assert fresh == committed, f"requirements/{name} is stale: run requirements/compile.sh"


def locked(image: Image) -> set[str]:
    text = (ROOT / "requirements" / f"{image.name}.txt").read_text()
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", text, re.M)}


@each_image
def test_lock_has_the_image_packages_and_no_others(image: Image) -> None:
    packages = locked(image)
    assert image.needs <= packages, image.needs - packages
    assert not image.forbidden & packages, image.forbidden & packages


# --- The runtime venv ----------------------------------------------------------------------------

# Sonames python:3.11-slim-bookworm ships (libc6, libgcc-s1, libstdc++6 for apt, zlib1g for
# dpkg). A wheel's native code needing anything else would need an apt package in its image.
BASE_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
}


@pytest.fixture(scope="module", params=IMAGES, ids=[image.name for image in IMAGES])
def image_venv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Image, Path]]:
    """The image's /opt/venv, built like its builder stage does, in a temporary folder."""
    image: Image = request.param
    venv = tmp_path_factory.mktemp(f"venv-{image.name}")
    uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--quiet", "--python", python, "-r", f"requirements/{image.name}.txt")
    uv("pip", "install", "--quiet", "--python", python, "--no-deps", "-e", ".")
    yield image, venv
    shutil.rmtree(venv, ignore_errors=True)


IMPORT_CHECK = """
import importlib, importlib.util, json, sys
modules, apps, forbidden = (json.loads(arg) for arg in sys.argv[1:])
for name in modules:
    importlib.import_module(name)
for name in apps:
    importlib.import_module(name).app.loader.import_default_modules()
print(json.dumps({
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
    "importable": [name for name in forbidden if importlib.util.find_spec(name)],
}))
"""


def module_of(package: str) -> str:
    """The top-level module a distribution installs."""
    return {"rl-accel": "_rl_accel"}.get(package, package.replace("-", "_"))


def run_in(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's python outside the repository, with no OFFLOAD_* settings or PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OFFLOAD_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))
    }
    return subprocess.run(
        [str(venv / "bin" / "python"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_image_venv_runs_what_the_image_runs(
    image_venv: tuple[Image, Path], tmp_path: Path
) -> None:
    image, venv = image_venv
    result = run_in(
        venv,
        "-c",
        IMPORT_CHECK,
        json.dumps([*image.modules, "services.ops.healthcheck"]),
        json.dumps(image.celery_apps),
        json.dumps(sorted(module_of(package) for package in image.forbidden)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["importable"] == [], f"other images' packages in {image.name}"
    if image.name == "gateway":
        assert "celery" not in report["loaded"], "the gateway imports worker code"
    # The health check itself runs there (here against a port nothing listens on).
    probe = run_in(
        venv, "-m", "services.ops.healthcheck", "http", "http://127.0.0.1:9/", cwd=tmp_path
    )
    assert (probe.returncode, probe.stdout.split(":")[0]) == (1, "unhealthy"), probe
    if image.name == "platform":
        cli = subprocess.run(
            [str(venv / "bin" / "offload"), "--help"], capture_output=True, text=True, timeout=60
        )
        assert cli.returncode == 0, cli.stderr
        assert "topology" in cli.stdout and "dlq" in cli.stdout


def test_image_venv_needs_no_system_library_beyond_the_base_image(
    image_venv: tuple[Image, Path],
) -> None:
    image, venv = image_venv
    needed: dict[str, set[str]] = {}
    for library in venv.rglob("*.so*"):
        if not library.is_file():
            continue
        output = subprocess.run(
            ["ldd", str(library)], capture_output=True, text=True, timeout=30
        ).stdout
        for soname, target in re.findall(r"^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", output, re.M):
            if target == "not found" or not target.startswith(str(venv)):
                needed.setdefault(soname, set()).add(library.name)
    missing = {
        soname: sorted(users) for soname, users in needed.items() if soname not in BASE_LIBRARIES
    }
    assert not missing, f"{image.name} needs system libraries the base image lacks: {missing}"
