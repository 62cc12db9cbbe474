"""What a user installs and what each entry point loads (SPEC §9).

The light paths are checked in child processes, as a user meets them: `import
registry.client` inside a service, `promptreg --help` and a remote rollback from a
laptop. The slow tests build the wheel from this checkout and install it into fresh
virtual environments outside it: core alone, then with `[server]`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# What only `[server]` (or another extra) may bring: never in a core install, never
# imported by the client library or by the CLI's help and remote commands.
SERVER_DISTRIBUTIONS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "prometheus-client",
    "litellm",
)
SERVER_MODULES = (
    *(name.replace("-", "_") for name in SERVER_DISTRIBUTIONS),  # their import names
    "registry.api",
    "registry.store",
    "registry.sync",
    "registry.usage",
    "registry.ui",
)
TOKENIZERS = ("tiktoken", "genai_prices")

# Runs a promptreg command in this interpreter, then prints the loaded modules as JSON.
LOADED_AFTER_COMMAND = """
import json, sys
from registry.cli import main
sys.argv = ["promptreg", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
sys.__stderr__.write(json.dumps(sorted(sys.modules)))
"""


# In a fresh [server] install: the sign-in page and two vendored files, from the wheel.
DASHBOARD_FROM_WHEEL = """
from fastapi.testclient import TestClient
import registry.ui
from registry.api.app import create_app
assert "site-packages" in registry.ui.__file__, registry.ui.__file__
with TestClient(create_app()) as client:
    for path in ("/ui/login", "/ui/static/vendor/htmx.min.js", "/ui/static/vendor/uPlot.LICENSE"):
        print(client.get(path).status_code)
"""


def loaded_modules(code: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """Module names loaded after running `code` in a fresh interpreter (printed on stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _forbidden(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_client_library_loads_no_server_module() -> None:
    loaded = loaded_modules(
        "import json, sys; import registry.client; from registry.client import Registry;"
        "sys.stderr.write(json.dumps(sorted(sys.modules)))"
    )
    assert _forbidden(loaded, SERVER_MODULES) == []
    assert "registry.client.registry" in loaded  # the import really happened


@pytest.mark.parametrize(
    "args", [["--help"], ["rollback", "--help"], ["db", "--help"], ["eval", "--help"]]
)
def test_help_loads_no_orm_web_framework_or_tokenizer(args: list[str]) -> None:
    loaded = loaded_modules(LOADED_AFTER_COMMAND, *args)
    assert _forbidden(loaded, (*SERVER_MODULES, *TOKENIZERS, "registry.definitions", "git")) == []
    assert "typer" in loaded


def test_packages_listed_in_pyproject_are_every_package_of_the_tree() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "registry").rglob("__init__.py")
    }
    migrations = {
        "registry." + ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "migrations").rglob("__init__.py")
    }
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == on_disk | migrations


def test_core_requirements_name_no_server_distribution() -> None:
    core = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    assert [name for name in SERVER_DISTRIBUTIONS if name in core] == []
    server = " ".join(PYPROJECT["project"]["optional-dependencies"]["server"])
    assert "uvicorn[standard]" in server


# -- a wheel, installed as a user would ---------------------------------------------------


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout's files (tracked or new, not ignored), built in a copy so
    the checkout is left as it was, as from a clean clone."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    source = out / "source"
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("promptreg-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    return build_wheel(tmp_path_factory.mktemp("dist"))


def _venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(folder)
    return folder / "bin"


def _pip(bin_dir: Path, *args: str) -> None:
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(ROOT / "constraints.txt"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTREG_")}
    env["PROMPTREG_DATABASE_URL"] = f"sqlite:///{cwd / 'fresh.db'}"
    return subprocess.run(
        [str(bin_dir / "promptreg"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_wheel_carries_migrations_starter_files_and_no_server_requirement(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "registry/migrations/env.py" in names
    assert "registry/migrations/script.py.mako" in names
    assert any(n.startswith("registry/migrations/versions/0001_") for n in names)
    assert any(n.startswith("registry/starter/policies/") for n in names)
    # the dashboard: its templates, its own static files, and the vendored ones with licences
    for name in (
        "templates/base.html",
        "templates/feature.html",
        "static/dashboard.js",
        "static/dashboard.css",
        "static/vendor/htmx.min.js",
        "static/vendor/htmx.LICENSE",
        "static/vendor/uPlot.iife.min.js",
        "static/vendor/uPlot.min.css",
        "static/vendor/uPlot.LICENSE",
        "static/vendor/VERSIONS",
    ):
        assert f"registry/ui/{name}" in names, name
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip().lower()
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert requires, "the wheel declares no requirements at all"
    leaked = [r for r in requires if any(r.startswith(name) for name in SERVER_DISTRIBUTIONS)]
    assert leaked == []


@pytest.mark.slow
def test_a_core_install_works_offline_from_files_and_names_the_extra_for_server_commands(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = _venv(tmp_path / "core")
    _pip(bin_dir, str(wheel))
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {row["name"].lower() for row in json.loads(installed.stdout)}
    assert sorted(names & {n.replace("_", "-") for n in SERVER_DISTRIBUTIONS}) == []

    work = tmp_path / "work"
    work.mkdir()
    assert _run(bin_dir, work, "init", "reg").returncode == 0
    checked = _run(bin_dir, work, "validate", "reg")
    assert checked.returncode == 0, checked.stderr
    assert "1 feature(s) valid" in checked.stdout

    for command in (["sync", "--repo", "reg"], ["serve"], ["db", "upgrade"], ["features"]):
        done = _run(bin_dir, work, *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr  # one line, no traceback
        assert "pip install 'promptreg[server]'" in lines[0]


@pytest.mark.slow
def test_a_server_install_migrates_a_new_database_in_any_folder(
    wheel: Path, tmp_path: Path
) -> None:
    bin_dir = _venv(tmp_path / "server")
    _pip(bin_dir, f"{wheel}[server]")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    done = _run(bin_dir, elsewhere, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "database upgraded: empty →" in done.stdout
    again = _run(bin_dir, elsewhere, "db", "upgrade")
    assert "already at the newest migration" in again.stdout
    # The dashboard answers from the installed package: templates and vendored files.
    dashboard = subprocess.run(
        [str(bin_dir / "python"), "-c", DASHBOARD_FROM_WHEEL],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dashboard.returncode == 0, dashboard.stderr
    assert dashboard.stdout.split() == ["200", "200", "200"], dashboard.stdout
