"""The cache against a real promptreg server: ETag revalidation, outages, snapshot files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.wait import wait_for
from typer.testing import CliRunner

from registry import labels
from registry.cli import app as cli
from registry.client import ClientError, Registry, RegistryUnavailable, SnapshotError
from registry.client.snapshot import read_snapshot
from registry.errors import NotFound
from registry.store.db import session_scope

QUESTION = {"question": "How do I reset my password?"}


@pytest.fixture
def registry_client(live_registry):
    made = []

    def make(**kwargs):
        kwargs.setdefault("report_usage", False)
        reg = Registry(live_registry.url, live_registry.token, **kwargs)
        made.append(reg)
        return reg

    yield make
    for reg in made:
        reg.close()


def echo(model, messages, params, max_output_tokens, stream, timeout):
    return f"{model}: {messages[0]['content'].splitlines()[-1]}"


def test_first_use_fetches_and_later_uses_revalidate_by_etag(registry_client):
    reg = registry_client(refresh_s=0)
    result = reg.run("demo.answer", QUESTION, call=echo)
    assert (result.outcome, result.version) == ("ok", 1)
    assert reg.stats()["fetched"] == 1

    reg.run("demo.answer", QUESTION, call=echo)  # stale at once: revalidated in the background
    wait_for(lambda: reg.stats()["not_modified"] >= 1, 10, "a 304 revalidation")
    assert reg.stats()["fetched"] == 1 and reg.stats()["registry_errors"] == 0


def test_a_new_version_and_a_rollback_reach_the_client(registry_client, live_registry):
    reg = registry_client(refresh_s=0)
    assert reg.run("demo.answer", QUESTION, call=echo).text == "fake-a: Be kind and precise."

    live_registry.repo.commit("shorter style", {"prompts/partials/style.jinja": "Be brief.\n"})
    live_registry.sync()
    wait_for(lambda: reg.resolve("demo.answer").version == 2, 10, "version 2")
    assert reg.run("demo.answer", QUESTION, call=echo).text == "fake-a: Be brief."

    with session_scope(live_registry.engine, write=True) as session:
        labels.rollback(session, "demo.answer", label="production", actor="on-call")
    wait_for(lambda: reg.resolve("demo.answer").version == 1, 10, "the rollback")
    result = reg.run("demo.answer", QUESTION, call=echo)
    assert (result.version, result.text) == (1, "fake-a: Be kind and precise.")


def test_registry_killed_after_the_first_fetch_run_still_works_from_cache(
    registry_client, live_registry, caplog
):
    reg = registry_client(refresh_s=0, timeout_s=0.5)
    first = reg.run("demo.answer", QUESTION, call=echo)
    live_registry.server.stop()

    with caplog.at_level(logging.WARNING, logger="promptreg.client"):
        for _ in range(3):
            result = reg.run("demo.answer", QUESTION, call=echo)
            assert (result.outcome, result.version, result.text) == ("ok", 1, first.text)
        wait_for(lambda: reg.stats()["registry_errors"] >= 1, 10, "a failed revalidation")
        reg.run("demo.answer", QUESTION, call=echo)
    stats = reg.stats()
    assert stats["served_stale"] >= 1
    warnings = [r.getMessage() for r in caplog.records if "registry unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per request
    assert "serving the cached version 1" in warnings[0]


def test_nothing_cached_and_the_registry_down_is_a_clear_error():
    reg = Registry("http://127.0.0.1:9", "token", timeout_s=0.5, report_usage=False)
    with pytest.raises(RegistryUnavailable, match="cannot reach http://127.0.0.1:9"):
        reg.run("demo.answer", QUESTION, call=echo)
    reg.close()


def test_unknown_features_and_bad_tokens_are_clear_errors(registry_client, live_registry):
    with pytest.raises(NotFound, match="nope"):
        registry_client().run("nope", {}, call=echo)
    bad = Registry(live_registry.url, "wrong-token", report_usage=False)
    with pytest.raises(ClientError, match="HTTP 401.*check the token"):
        bad.run("demo.answer", QUESTION, call=echo)
    bad.close()


def test_export_from_the_server_and_from_the_database_agree(live_registry, db_url, tmp_path):
    runner = CliRunner()
    via_api, via_db = tmp_path / "api.json", tmp_path / "db.json"
    args = ["export", "--out", str(via_api), "--url", live_registry.url]
    done = runner.invoke(cli, [*args, "--token", live_registry.token])
    assert done.exit_code == 0, done.output
    assert "exported 2 feature(s) labelled production" in done.output
    done = runner.invoke(cli, ["export", "--out", str(via_db), "--database-url", db_url, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["features"] == 2

    api, db = read_snapshot(via_api), read_snapshot(via_db)
    assert sorted(api) == sorted(db) == ["demo.answer", "demo.patient"]
    assert {n: v["content_hash"] for n, v in api.items()} == {
        n: v["content_hash"] for n, v in db.items()
    }


@pytest.mark.slow
def test_fresh_process_with_only_a_snapshot_and_the_registry_down(
    live_registry, provider, tmp_path
):
    snapshot = tmp_path / "snapshot.json"
    done = CliRunner().invoke(
        cli,
        [
            "export",
            "--out",
            str(snapshot),
            "--url",
            live_registry.url,
            "--token",
            live_registry.token,
        ],
    )
    assert done.exit_code == 0, done.output
    live_registry.server.stop()  # the registry is down for the whole life of the new process

    script = textwrap.dedent(
        """
        import json, sys
        import openai
        from registry.client import Registry, openai_call

        url, token, snapshot, provider = sys.argv[1:]
        reg = Registry(url, token, snapshot=snapshot, timeout_s=0.5)
        with openai.OpenAI(base_url=provider, api_key="k") as client:
            result = reg.run("demo.answer", {"question": "hi"}, call=openai_call(client))
        print(json.dumps({"text": result.text, "outcome": result.outcome,
                          "version": result.version}))
        """
    )
    args = [live_registry.url, live_registry.token, str(snapshot), provider.base_url]
    done_proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done_proc.returncode == 0, done_proc.stderr
    out = json.loads(done_proc.stdout.strip().splitlines()[-1])
    assert out == {"text": "answer from fake-a", "outcome": "ok", "version": 1}
    assert provider.models_called() == ["fake-a"]


def test_a_tampered_or_foreign_snapshot_is_refused(snapshot_file: Path, tmp_path):
    document = json.loads(snapshot_file.read_text())
    document["features"]["demo.answer"]["snapshot"]["policy"]["max_output_tokens"] = 5000
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    with pytest.raises(SnapshotError, match="does not match its content hash"):
        Registry(None, snapshot=tampered)
    with pytest.raises(SnapshotError, match="label 'production'.*label 'staging'"):
        Registry(None, snapshot=snapshot_file, label="staging")
    with pytest.raises(SnapshotError, match="no such snapshot file"):
        Registry(None, snapshot=tmp_path / "missing.json")


def test_a_client_can_save_its_own_snapshot(make_registry, tmp_path):
    reg = make_registry()
    assert reg.save_snapshot(tmp_path / "copy.json") == 2
    assert sorted(read_snapshot(tmp_path / "copy.json")) == ["demo.answer", "demo.patient"]
