"""docker-compose.yml, .env.example and Dockerfile agree with the code: real commands, settings and flags.

No Docker engine is needed: the file is parsed with PyYAML and every command it runs is checked against the
`ktrdr` CLI (click's runner) and celery's own CLI. `docker compose config` runs too where a compose client is
installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from agent_pipeline.cli import cli, worker_argv
from tests.services import requirement_missing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"

EXPECTED_SERVICES = {
    "redis", "postgres", "minio", "minio-init", "migrate", "api", "research-worker", "gpu-worker", "flower", "beat",
    "prometheus",
}  # fmt: skip
GPU_HOST = ROOT / "docker-compose.gpu-host.yml"
# Variables docker compose reads that are not ktrdr settings.
COMPOSE_ONLY = {
    "POSTGRES_PASSWORD", "FLOWER_USER", "FLOWER_PASSWORD", "API_PORT", "FLOWER_PORT", "PROMETHEUS_PORT",
    "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "MINIO_PORT", "KTRDR_BUCKET", "KTRDR_MAIN_HOST",
}  # fmt: skip
# Read by a library rather than by Settings (the AWS_* names by botocore, under s3fs).
LIBRARY_VARS = {
    "ANTHROPIC_BASE_URL", "PYTHONUNBUFFERED", "REMAP_SIGTERM",
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
}  # fmt: skip
# Services that are not ktrdr containers: their environment is their image's.
THIRD_PARTY = {"redis", "postgres", "minio", "minio-init"}
KTRDR_HOME = "/data/ktrdr"
# `${VAR}`, `${VAR:-default}`, `${VAR:?message}` (but not the escaped `$${VAR}`).
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_example_names() -> set[str]:
    """Variables in .env.example, set (`VAR=...`) or documented as optional (`# VAR=...`)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))


def env_example_values() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.M))


def setting_env_names() -> set[str]:
    """Every environment name Settings reads: KTRDR_<FIELD>, or the field's alias (DATABASE_URL, gates...)."""
    from agent_pipeline.config import Settings

    names = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            names.add(f"KTRDR_{field_name.upper()}")
        else:
            names.update(str(choice) for choice in getattr(alias, "choices", [alias]))
    return names


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else list(command)


def ktrdr_services(services: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    return {name: command_of(s)[1:] for name, s in services.items() if command_of(s)[:1] == ["ktrdr"]}


def command_path(args: list[str]) -> list[str]:
    """`worker --queues gpu` -> `[worker]`: the words before the first option."""
    path = []
    for arg in args:
        if arg.startswith("-"):
            break
        path.append(arg)
    return path


def test_the_stack_has_every_service(services) -> None:
    assert set(services) == EXPECTED_SERVICES


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("migrate", ["db", "upgrade"]),
        ("api", ["api", "--host", "0.0.0.0", "--port", "8000"]),
        ("research-worker", ["worker", "--queues", "research", "--concurrency", "2"]),
        ("gpu-worker", ["worker", "--queues", "gpu", "--concurrency", "1"]),
    ],
)
def test_ktrdr_services_run_the_expected_commands(services, service, expected) -> None:
    assert ktrdr_services(services)[service] == expected


def test_every_ktrdr_command_is_a_real_cli_command(services) -> None:
    commands = ktrdr_services(services)
    assert commands, "no service runs ktrdr"
    runner = CliRunner()
    for name, args in commands.items():
        path = command_path(args)
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, f"{name}: ktrdr {' '.join(path)} --help failed:\n{result.output}"


def test_worker_services_exec_celery_with_their_queue_flags(services, monkeypatch) -> None:
    import os

    execs: list[list[str]] = []

    def fake_exec(_file: str, argv: list[str]) -> None:
        execs.append(list(argv))

    monkeypatch.setattr(os, "execvp", fake_exec)
    for name in ("research-worker", "gpu-worker"):
        execs.clear()
        result = CliRunner().invoke(cli, ktrdr_services(services)[name])
        assert result.exit_code == 0, result.output
        assert len(execs) == 1
        queue = "gpu" if name == "gpu-worker" else "research"
        concurrency = 1 if queue == "gpu" else 2
        assert execs[0] == worker_argv(queue, concurrency, "INFO")
        argv = " ".join(execs[0])
        assert f"-Q {queue}" in argv and f"-c {concurrency}" in argv and "--pool prefork" in argv
        assert ("--max-tasks-per-child 1" in argv) == (queue == "gpu")
        # The healthcheck pings the worker by the node name the CLI gives it (`<queue>@%h`).
        assert f"-n {queue}@%h" in argv
        assert f"{queue}@$$HOSTNAME" in " ".join(healthcheck_test(services[name]))


def test_api_service_serves_on_every_interface_port_8000(services, monkeypatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    result = CliRunner().invoke(cli, ktrdr_services(services)["api"])
    assert result.exit_code == 0, result.output
    assert calls == [{"app": "agent_pipeline.api.app:app", "host": "0.0.0.0", "port": 8000, "log_level": "info"}]
    assert any(str(p).endswith(":8000") for p in services["api"]["ports"])
    assert "/api/v1/health" in " ".join(healthcheck_test(services["api"]))


def test_migrate_service_runs_db_upgrade(services) -> None:
    # tests/conftest.py gives this test its own KTRDR_HOME, so this migrates a throwaway SQLite file.
    result = CliRunner().invoke(cli, ktrdr_services(services)["migrate"])
    assert result.exit_code == 0, result.output
    assert "Database is up to date" in result.output


def test_flower_command_parses_with_celery_and_flower_options(services) -> None:
    command = command_of(services["flower"])
    assert command[:4] == ["celery", "-A", "agent_pipeline", "flower"]
    help_run = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "agent_pipeline", "flower", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_run.returncode == 0, help_run.stderr
    from flower.options import options as flower_options

    for arg in command[4:]:
        name = arg.removeprefix("--").split("=", 1)[0]
        assert name in flower_options, f"flower has no option --{name}"
    assert "--port=5555" in command
    auth = next(arg for arg in command if arg.startswith("--basic-auth="))
    assert re.fullmatch(r"--basic-auth=\$\{FLOWER_USER[^}]*\}:\$\{FLOWER_PASSWORD[^}]*\}", auth), auth
    assert any(str(p).endswith(":5555") for p in services["flower"]["ports"])


def healthcheck_test(service: dict[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test") or []
    return [test] if isinstance(test, str) else list(test)


def test_every_service_has_a_healthcheck_or_is_one_shot(services) -> None:
    one_shot = {
        dependency
        for service in services.values()
        for dependency, spec in (service.get("depends_on") or {}).items()
        if isinstance(spec, dict) and spec.get("condition") == "service_completed_successfully"
    }
    assert one_shot == {"migrate", "minio-init"}
    assert services["migrate"].get("restart") == services["minio-init"].get("restart") == "no"
    for name, service in services.items():
        if name in one_shot:
            assert "healthcheck" not in service, name
            continue
        test = healthcheck_test(service)
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    assert healthcheck_test(services["redis"]) == ["CMD", "redis-cli", "ping"]
    assert "pg_isready" in " ".join(healthcheck_test(services["postgres"]))


def test_start_order(services) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    ready = "service_completed_successfully"
    assert conditions("api") == {"migrate": ready, "minio-init": ready, "redis": "service_healthy"}
    assert conditions("research-worker")["redis"] == "service_healthy"
    assert conditions("research-worker")["minio-init"] == ready
    # The GPU worker needs only the broker and the store's bucket (no database, no API key).
    assert conditions("gpu-worker") == {"minio-init": ready, "redis": "service_healthy"}
    assert conditions("minio-init") == {"minio": "service_healthy"}
    assert conditions("flower") == {"redis": "service_healthy"}


def test_gpu_worker_reserves_an_nvidia_device(services) -> None:
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_postgres_keeps_its_data_in_a_named_volume(compose, services) -> None:
    postgres = services["postgres"]
    mounts = dict(str(v).split(":", 1) for v in postgres["volumes"])
    volume = next(src for src, dst in mounts.items() if dst.rstrip("/") == "/var/lib/postgresql/data")
    assert volume in compose["volumes"]
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_ktrdr_home_is_one_volume_of_the_research_side_and_the_gpu_worker_mounts_none(compose, services) -> None:
    # Issue 16: what crosses hosts goes through the object store; the GPU worker shares no disk, as on another host.
    assert KTRDR_HOME not in " ".join(str(v) for v in services["gpu-worker"].get("volumes") or [])
    sources = set()
    for name in ("migrate", "api", "research-worker"):
        service = services[name]
        assert service["environment"]["KTRDR_HOME"] == KTRDR_HOME, name
        mounts = dict(str(v).rsplit(":", 1)[::-1] for v in service["volumes"])
        assert KTRDR_HOME in mounts, f"{name} does not mount {KTRDR_HOME}"
        sources.add(mounts[KTRDR_HOME])
    assert len(sources) == 1 and sources <= set(compose["volumes"])


def test_ktrdr_services_point_at_the_compose_servers(services) -> None:
    for name in ("migrate", "api", "research-worker", "gpu-worker", "flower"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://ktrdr:${POSTGRES_PASSWORD"), name
        assert env["DATABASE_URL"].endswith("@postgres:5432/ktrdr"), name
        assert env["KTRDR_BROKER_URL"] == env["KTRDR_RESULT_BACKEND"] == "redis://redis:6379/0", name
        # Passed through when set, absent otherwise (an empty value would count as set).
        assert "ANTHROPIC_API_KEY" in env and env["ANTHROPIC_API_KEY"] is None, name


def test_every_variable_in_the_compose_file_is_documented(services) -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    passed_through = {
        key for service in services.values() for key, value in (service.get("environment") or {}).items()
        if value is None
    }  # fmt: skip
    missing = (used | passed_through) - env_example_names()
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_every_container_setting_is_a_real_setting(services) -> None:
    known = setting_env_names() | LIBRARY_VARS
    for name, service in services.items():
        if name in THIRD_PARTY:
            continue
        unknown = set(service.get("environment") or {}) - known
        assert not unknown, f"{name} sets unknown variables {sorted(unknown)}"


def test_env_example_names_only_real_settings() -> None:
    settings = setting_env_names()
    names = env_example_names()
    unknown = names - settings - COMPOSE_ONLY - LIBRARY_VARS
    assert not unknown, f".env.example documents variables nothing reads: {sorted(unknown)}"
    assert {"POSTGRES_PASSWORD", "FLOWER_USER", "FLOWER_PASSWORD", "ANTHROPIC_API_KEY"} <= names


def test_env_example_values_are_valid_settings(monkeypatch) -> None:
    from agent_pipeline.config import Settings

    settings_names = setting_env_names()
    for key, value in env_example_values().items():
        if key in settings_names and value:
            monkeypatch.setenv(key, value)
    Settings()  # raises ValidationError on a malformed example value


def test_dockerfile_installs_pinned_torch_before_the_package() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, flags=re.M)
    pin = re.search(r"^TORCH_PIN := (torch==\S+)", (ROOT / "Makefile").read_text(), flags=re.M)
    assert pin, "Makefile has no TORCH_PIN"
    version = pin.group(1).split("==")[1]
    assert f"ARG TORCH_VERSION={version}" in text
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    torch_at = next(i for i, line in enumerate(runs) if 'pip install "torch==${TORCH_VERSION}"' in line)
    package_at = next(i for i, line in enumerate(runs) if re.match(r"RUN pip install \.(\s|$)", line))
    assert torch_at < package_at
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".env", ".git", ".ktrdr"} <= ignored


NO_COMPOSE = "no compose client: neither `docker compose` (the compose plugin) nor `docker-compose` is installed"


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file(tmp_path) -> None:
    client = compose_client()
    if client is None:
        requirement_missing(NO_COMPOSE)  # .ci/run installs docker-compose: under CI=true this fails
    check = subprocess.run(
        [*client, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    # Without the required secrets compose refuses to start rather than run with blank passwords.
    blank = tmp_path / "blank.env"
    blank.write_text("")
    empty = subprocess.run(
        [*client, "-f", str(COMPOSE), "--env-file", str(blank), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    assert empty.returncode != 0
    assert "POSTGRES_PASSWORD" in empty.stderr or "FLOWER_PASSWORD" in empty.stderr


def test_docker_compose_config_accepts_the_gpu_host_file_once_the_main_host_is_named(tmp_path) -> None:
    client = compose_client()
    if client is None:
        requirement_missing(NO_COMPOSE)  # .ci/run installs docker-compose: under CI=true this fails

    def config(env_text: str) -> subprocess.CompletedProcess[str]:
        env_file = tmp_path / "gpu.env"
        env_file.write_text(env_text)
        return subprocess.run(
            [*client, "-f", str(GPU_HOST), "--env-file", str(env_file), "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        )

    # .env.example leaves KTRDR_MAIN_HOST commented out: a GPU host must say where the main stack is
    unnamed = config(ENV_EXAMPLE.read_text())
    assert unnamed.returncode != 0 and "KTRDR_MAIN_HOST" in unnamed.stderr
    named = config(ENV_EXAMPLE.read_text() + "\nKTRDR_MAIN_HOST=10.0.0.5\n")
    assert named.returncode == 0, named.stderr


def test_beat_service_runs_the_schedule_on_the_loop_profile(services) -> None:
    from agent_pipeline.config import Settings

    beat = services["beat"]
    assert command_of(beat) == ["ktrdr", "beat"] and beat["profiles"] == ["loop"]
    schedule = beat["environment"]["KTRDR_SCHEDULE"]
    assert schedule.startswith("${KTRDR_SCHEDULE:-")
    Settings(schedule=schedule.split(":-", 1)[1].rstrip("}"))  # the default is a valid schedule
    assert beat["environment"]["DATABASE_URL"] == services["api"]["environment"]["DATABASE_URL"]


def test_prometheus_scrapes_the_api_and_flower(services) -> None:
    prometheus = services["prometheus"]
    mounts = dict(str(v).split(":")[:2] for v in prometheus["volumes"])
    assert mounts["./prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {"ktrdr-api": "api:8000", "flower": "flower:5555"}
    api_port = command_of(services["api"])[-1]
    assert targets["ktrdr-api"].endswith(f":{api_port}") and "--port=5555" in command_of(services["flower"])


def test_workers_get_the_time_their_soft_shutdown_needs(services) -> None:
    from agent_pipeline.pipeline.worker import SOFT_SHUTDOWN_TIMEOUT_S

    for name in ("research-worker", "gpu-worker"):
        assert services[name]["environment"]["REMAP_SIGTERM"] == "SIGQUIT"  # SIGTERM starts the soft shutdown
        grace = services[name]["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) >= SOFT_SHUTDOWN_TIMEOUT_S + 10, grace


def test_ktrdr_services_use_the_minio_bucket_over_s3(services) -> None:
    from agent_pipeline.config import Settings

    for name in ("api", "research-worker", "gpu-worker"):
        env = services[name]["environment"]
        assert env["KTRDR_ARTIFACTS_URL"] == "s3://${KTRDR_BUCKET:-ktrdr}/artifacts", name
        assert env["KTRDR_DATA_URL"] == "s3://${KTRDR_BUCKET:-ktrdr}/data", name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
    Settings(artifacts_url="s3://ktrdr/artifacts", data_url="s3://ktrdr/data")  # valid once substituted
    init = " ".join(command_of(services["minio-init"]))
    assert "mc mb --ignore-existing" in init and "$$KTRDR_BUCKET" in init


def test_the_gpu_host_file_needs_only_the_broker_and_the_store() -> None:
    gpu_host = yaml.safe_load(GPU_HOST.read_text())["services"]
    assert set(gpu_host) == {"gpu-worker"}
    service = gpu_host["gpu-worker"]
    assert command_of(service)[1:] == ["worker", "--queues", "gpu", "--concurrency", "1"]
    env = set(service["environment"])
    assert {"KTRDR_BROKER_URL", "KTRDR_RESULT_BACKEND", "KTRDR_ARTIFACTS_URL", "AWS_ENDPOINT_URL"} <= env
    assert not env & {"DATABASE_URL", "ANTHROPIC_API_KEY", "KTRDR_HOME"}  # no database, no key, no shared home
    assert env <= setting_env_names() | LIBRARY_VARS
    assert not service.get("volumes") and not service.get("depends_on")
    missing = set(VARIABLE.findall(GPU_HOST.read_text())) - env_example_names()
    assert not missing, f"not in .env.example: {sorted(missing)}"
