"""The Dockerfile, .dockerignore and deploy/compose.yaml, checked by their rules: images cannot be
pulled on this machine and Docker has no daemon here, so nothing is built or started; what can be
checked without is (the build context makes an installable durapay, every mounted file exists)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from tests.deploy.files import DEPLOY, ROOT

# An image pinned by digest, or by a tag naming an exact version (3.11.11-slim-bookworm, v2.53.2;
# PostgreSQL's releases are major.minor: 16.4).
PINNED = re.compile(r"^[\w./-]+(@sha256:[0-9a-f]{64}|:v?\d+\.\d+\.\d+[\w.-]*)$|^postgres:\d+\.\d+(-[a-z]+)?$")
SECRETISH = re.compile(r"(\.env|\.pem|\.key|secret|password|credential|durapay\.toml|\.db)", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, rest))
    return result


def test_multi_stage_from_pinned_bases() -> None:
    froms = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "build and runtime stages"
    for image in froms:
        assert PINNED.match(image), f"FROM {image} is not pinned to an exact version or digest"


def test_runtime_stage_runs_as_an_unprivileged_user_with_the_cli_entry_point() -> None:
    runtime = stages()[-1]
    [user] = [rest for keyword, rest in runtime if keyword == "USER"]
    name = user.split(":")[0]
    assert name not in ("root", "0") and (not name.isdigit() or int(name) >= 1000)
    assert ("ENTRYPOINT", '["durapay"]') in runtime
    # Only the virtualenv crosses from the build stage: no sources, no build tools.
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies == ["--from=build /opt/durapay /opt/durapay"]


def test_no_secret_enters_a_layer() -> None:
    for keyword, rest in instructions():
        if keyword in ("COPY", "ADD"):
            assert not SECRETISH.search(rest), f"{keyword} {rest}"
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(SECRET|PASSWORD|TOKEN|API_KEYS?|DATABASE__URL)\w*=", rest), rest
        assert keyword != "ADD", "ADD fetches and unpacks: COPY says what it does"


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def in_context(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching rule wins)."""
    included = True
    for rule in dockerignore():
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + list(parts)
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            included = negate
    return included


def test_dockerignore_keeps_everything_out_but_the_sources() -> None:
    assert dockerignore()[0] == "*", "exclude everything, then name what the build needs"
    for secret in (
        ".env",
        "durapay.toml",
        ".durapay/durapay.db",
        "key.pem",
        ".venv/bin/python",
        ".git/config",
    ):
        assert not in_context(secret), secret
    for needed in ("pyproject.toml", "README.md", "workers/cli.py", "activities/store/migrations/env.py"):
        assert in_context(needed), needed
    assert not in_context("workers/bench/results/bench.png")
    assert not in_context("api/__pycache__/app.cpython-311.pyc")


def test_the_build_context_makes_an_installable_durapay(tmp_path: Path) -> None:
    """The files the build stage copies, and only those, build a wheel with the CLI, the migrations
    and the OpenAPI document in it (what `pip install .` in the image installs)."""
    context = tmp_path / "context"
    for keyword, rest in stages()[0]:
        if keyword != "COPY":
            continue
        *sources, _destination = rest.split()
        for source in sources:
            origin = ROOT / source
            target = context / source
            if origin.is_dir():
                shutil.copytree(
                    origin, target, ignore=lambda d, names: [n for n in names if not in_context(f"{d}/{n}")]
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path / "dist"), str(context)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("durapay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"workers/cli.py", "api/openapi.yaml", "activities/store/migrations/script.py.mako"} <= names
    assert any(n.startswith("activities/store/migrations/versions/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "durapay = workers.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_compose_pins_its_images_and_keeps_secrets_out() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            assert service["build"]["dockerfile"] == "Dockerfile" and image.startswith("durapay:")
        else:
            assert PINNED.match(image), f"{name}: {image} is not pinned"
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|PWD|API_KEYS|DATABASE__URL", key):
                # Every secret is the caller's, required at `docker compose up`, never a literal.
                assert re.search(r"\$\{\w+:\?[^}]*\}", str(value)), f"{name}: {key} holds a literal"
    assert {
        "postgresql",
        "temporal",
        "temporal-ui",
        "migrate",
        "worker",
        "api",
        "prometheus",
        "grafana",
    } <= set(services)
    assert [services[n]["command"] for n in ("migrate", "worker", "api")] == [
        ["migrate"],
        ["worker"],
        ["api"],
    ]
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounted = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert "./grafana/durapay.json" in mounted and "./prometheus/alerts.yaml" in mounted
    for source in mounted:
        assert (DEPLOY / source).is_file(), source
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
