"""Settings: every PROMPTREG_* variable in one class, folders where the platform keeps them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from registry import config
from registry.config import Settings


@pytest.mark.skipif(sys.platform != "linux", reason="XDG folders are the Linux convention")
def test_the_cache_folder_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTREG_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert Settings().cache_dir == tmp_path / "xdg-cache" / "promptreg"
    monkeypatch.setenv("PROMPTREG_CACHE_DIR", str(tmp_path / "mine"))
    assert Settings().cache_dir == tmp_path / "mine"


def test_every_setting_is_documented_in_the_config_module() -> None:
    assert config.__doc__ is not None
    documented = set(re.findall(r"^(PROMPTREG_[A-Z_]+)\s", config.__doc__, re.MULTILINE))
    fields = {f"PROMPTREG_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields


def test_the_label_default_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().label == "production"
    monkeypatch.setenv("PROMPTREG_LABEL", "canary")
    assert Settings().label == "canary"
