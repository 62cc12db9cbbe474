"""The bundled demo registry (what `make run` serves) is valid and every sample renders."""

from pathlib import Path

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
