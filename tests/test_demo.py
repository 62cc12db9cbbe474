"""The bundled demo registry (what `make run` serves) is valid and every sample renders; `make
run` prints where the dashboard is and the token to sign in with."""

from pathlib import Path

import pytest
from support.cli import invoke
from support.git import GitRepo

from registry.cli import serve as serve_commands
from registry.definitions.load import RegistryLoader
from registry.definitions.tree import DirTree
from registry.request import prepare

ROOT = Path(__file__).resolve().parents[1]


def test_demo_registry_validates_and_every_sample_fits_its_budget():
    loaded = RegistryLoader(DirTree(ROOT)).load()
    assert loaded.problems == []
    assert len(loaded.features) >= 5
    for feature in loaded.features.values():
        assert feature.prompt.sample is not None, feature.name
        prepared = prepare(feature, loaded.catalog, feature.prompt.sample)
        assert prepared.verdict.allowed, (feature.name, prepared.verdict.reason)
        assert prepared.messages, feature.name


def test_demo_uses_partials_defaults_and_a_private_model():
    loaded = RegistryLoader(DirTree(ROOT)).load()
    assert any(f.partials for f in loaded.features.values())
    assert (ROOT / "policies" / "_defaults.yaml").is_file()
    private = {m for f in loaded.features.values() for m in f.models} - set(
        loaded.catalog.overrides
    )
    assert set(loaded.catalog.overrides) and private


def test_make_run_prints_the_dashboard_url_and_the_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = GitRepo(tmp_path / "demo")
    repo.commit(
        "The demo registry",
        {
            str(path.relative_to(ROOT)): path.read_text()
            for folder in ("prompts", "policies")
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
        },
    )
    monkeypatch.chdir(repo.path)
    served: dict[str, object] = {}
    monkeypatch.setattr(serve_commands, "serve", lambda **options: served.update(options))
    result = invoke("demo", "--port", "8123")
    assert result.exit_code == 0, result.output
    token = (repo.path / ".promptreg" / "demo-token").read_text().strip()
    assert "Dashboard: http://127.0.0.1:8123/ui  (sign in with the admin token above)" in (
        result.stdout
    )
    assert token in result.stdout
    assert served["port"] == 8123
