"""Queries in registry.store.crud, on SQLite and PostgreSQL."""

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlmodel import Session, select

from registry import labels
from registry.store import crud
from registry.store.models import ApiToken, ApiTokenPublic, CommitInfo, Feature, Version

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _id(row: Feature | Version) -> int:
    assert row.id is not None
    return row.id


def commit(n: int = 1, at: datetime = T0) -> CommitInfo:
    return CommitInfo(
        sha=f"{n:040x}",
        author="Ada",
        email="ada@example.com",
        message=f"change {n}",
        committed_at=at,
    )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def add(session: Session, feature: Feature, content: str, n: int = 1) -> Version:
    return crud.add_version(
        session=session,
        feature=feature,
        content_hash=digest(content),
        content=content,
        prompt_path="prompts/support/reply.jinja",
        policy_path="policies/support/reply.yaml",
        commit=commit(n),
    )


def move(
    session: Session,
    feature: Feature,
    version: Version,
    name: str = "production",
    pinned: bool = False,
    action: str = "sync",
    reason: str | None = None,
) -> None:
    labels.move(
        session, feature, name, version, pinned=pinned, action=action, actor="ci", reason=reason
    )


def test_features_are_created_once(session: Session) -> None:
    first = crud.get_or_create_feature(session=session, name="support.reply")
    assert crud.get_or_create_feature(session=session, name="support.reply").id == first.id
    assert crud.get_feature(session=session, name="support.reply") == first
    assert crud.get_feature(session=session, name="nope") is None
    assert first.created_at.tzinfo is not None and not first.retired


def test_feature_names_are_unique_in_the_database(session: Session) -> None:
    session.add(Feature(name="a"))
    session.commit()
    session.add(Feature(name="a"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_versions_are_numbered_per_feature(session: Session) -> None:
    a = crud.get_or_create_feature(session=session, name="a")
    b = crud.get_or_create_feature(session=session, name="b")
    assert [add(session, a, f"a{i}").version for i in range(3)] == [1, 2, 3]
    assert add(session, b, "b0").version == 1
    session.commit()
    latest = crud.latest_version(session=session, feature=a)
    assert latest is not None and latest.version == 3
    got = crud.get_version(session=session, feature=a, version=2)
    assert got is not None and got.content == "a1" and got.content_hash == digest("a1")
    assert crud.get_version(session=session, feature=b, version=2) is None
    assert (
        crud.latest_version(
            session=session, feature=crud.get_or_create_feature(session=session, name="c")
        )
        is None
    )


def test_version_numbers_are_unique_in_the_database(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    version = add(session, feature, "x")
    session.commit()
    session.refresh(version)
    clone = Version.model_validate(version.model_dump(exclude={"id"}))
    session.add(clone)
    with pytest.raises(IntegrityError):
        session.commit()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(
        Version(
            feature_id=999,
            version=1,
            content_hash=digest("x"),
            content="x",
            prompt_path="p",
            policy_path="q",
            commit_sha="1" * 40,
            commit_author="a",
            commit_email="e",
            committed_at=T0,
            commit_message="m",
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()


def test_find_version_by_hash_returns_the_newest(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    add(session, feature, "x")
    add(session, feature, "y")
    add(session, feature, "x")  # a revert: new content again, new version
    found = crud.find_version_by_hash(session=session, feature=feature, content_hash=digest("x"))
    assert found is not None and found.version == 3
    assert (
        crud.find_version_by_hash(session=session, feature=feature, content_hash=digest("z"))
        is None
    )


@pytest.mark.parametrize("bad", ["ABC", "0" * 63, "A" * 64, "g" * 64])
def test_content_hash_must_be_lowercase_hex_sha256(session: Session, bad: str) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    with pytest.raises(ValueError, match="64 lowercase hex"):
        crud.add_version(
            session=session,
            feature=feature,
            content_hash=bad,
            content="{}",
            prompt_path="p",
            policy_path="q",
            commit=commit(),
        )


def test_commit_time_round_trips_as_aware_utc(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    local = datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    crud.add_version(
        session=session,
        feature=feature,
        content_hash=digest("x"),
        content="x",
        prompt_path="p",
        policy_path="q",
        commit=commit(at=local),
    )
    session.commit()
    session.expunge_all()
    stored = session.exec(select(Version)).one()
    assert stored.committed_at == local
    assert stored.committed_at.utcoffset() == timedelta(0)
    assert stored.committed_at.hour == 12 and stored.committed_at.microsecond == 123456
    assert stored.commit.sha == commit().sha and stored.commit.email == "ada@example.com"


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(Feature(name="a", created_at=datetime(2024, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_set_label_moves_pins_and_audits(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    v1, v2, v3 = (add(session, feature, c) for c in "xyz")
    move(session, feature, v1)
    move(session, feature, v2)
    move(session, feature, v2)  # unchanged: no audit entry
    move(session, feature, v3)
    move(session, feature, v2, pinned=True, action="rollback", reason="bad prompt")
    session.commit()
    resolved = crud.resolve_label(session=session, feature=feature, name="production")
    assert resolved is not None
    label, version = resolved
    assert version.version == 2 and label.pinned and label.previous_version_id == v3.id
    audit = crud.list_audit(session=session, feature=feature)
    assert [(e.action, e.from_version, e.to_version) for e in audit] == [
        ("rollback", 3, 2),
        ("sync", 2, 3),
        ("sync", 1, 2),
        ("sync", None, 1),
    ]
    assert audit[0].feature == "a" and audit[0].reason == "bad prompt" and audit[0].actor == "ci"
    assert audit[0].label == "production" and audit[0].at.tzinfo is not None
    assert crud.get_label(session=session, feature=feature, name="staging") is None


def test_unpinning_alone_is_audited(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    v1 = add(session, feature, "x")
    move(session, feature, v1, pinned=True, action="rollback")
    move(session, feature, v1, pinned=False, action="promote")
    audit = crud.list_audit(session=session, feature=feature)
    assert [(e.action, e.from_version, e.to_version) for e in audit][0] == ("promote", 1, 1)


def test_set_label_refuses_another_features_version(session: Session) -> None:
    a = crud.get_or_create_feature(session=session, name="a")
    b = crud.get_or_create_feature(session=session, name="b")
    with pytest.raises(ValueError, match="does not belong"):
        move(session, a, add(session, b, "x"))


def test_audit_actions_are_checked(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    with pytest.raises(ValueError, match="audit action"):
        crud.add_audit(
            session=session,
            feature=feature,
            label="production",
            action="delete",
            from_version=None,
            to_version=None,
            actor="x",
        )


def test_list_audit_filters_and_limits(session: Session) -> None:
    a = crud.get_or_create_feature(session=session, name="a")
    b = crud.get_or_create_feature(session=session, name="b")
    for n in range(3):
        move(session, a, add(session, a, f"a{n}"))
        move(session, b, add(session, b, f"b{n}"), name="staging")
    session.commit()
    assert [e.feature for e in crud.list_audit(session=session, limit=4)] == ["b", "a", "b", "a"]
    assert {e.feature for e in crud.list_audit(session=session, feature=b)} == {"b"}
    assert len(crud.list_audit(session=session, label="production")) == 3


def test_versions_of_lists_newest_first_with_labels(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    v1, v2, _ = (add(session, feature, c, n) for n, c in enumerate("xyz", 1))
    move(session, feature, v2)
    move(session, feature, v2, name="canary")
    move(session, feature, v1, name="staging")
    versions = crud.versions_of(session=session, feature=feature)
    assert [(v.version, v.labels) for v in versions] == [
        (3, []),
        (2, ["canary", "production"]),
        (1, ["staging"]),
    ]
    assert versions[0].commit.message == "change 3" and versions[0].feature == "a"
    assert set(versions[0].model_dump()) >= {
        "version",
        "content_hash",
        "commit",
        "created_at",
        "labels",
    }


def test_list_features_with_label(session: Session) -> None:
    a = crud.get_or_create_feature(session=session, name="a")
    crud.get_or_create_feature(session=session, name="b")
    move(session, a, add(session, a, "x"), pinned=True, action="rollback")
    move(session, a, add(session, a, "y"), name="staging")
    labels.retire(session, a, retired=True, label="production", actor="ci")
    session.commit()
    rows = crud.list_features_with_label(session=session, label="production")
    assert [(r.name, r.version, r.pinned, r.retired) for r in rows] == [
        ("a", 1, True, True),
        ("b", None, False, False),
    ]
    assert rows[0].updated_at is not None and rows[1].updated_at is None
    staging = crud.list_features_with_label(session=session, label="staging")
    assert [(r.name, r.version, r.pinned) for r in staging] == [("a", 2, False), ("b", None, False)]


def test_retire_and_unretire_are_audited_once(session: Session) -> None:
    feature = crud.get_or_create_feature(session=session, name="a")
    move(session, feature, add(session, feature, "x"))
    for retired in (True, True, False):
        labels.retire(session, feature, retired=retired, label="production", actor="ci")
    assert not feature.retired and feature.retired_at is None
    audit = crud.list_audit(session=session, feature=feature)
    assert [(e.action, e.from_version, e.to_version) for e in audit][:2] == [
        ("unretire", 1, 1),
        ("retire", 1, 1),
    ]


def test_sync_state_is_per_repo_ref_and_label(session: Session) -> None:
    def set_state(label: str, sha: str) -> None:
        crud.set_sync_state(
            session=session, repo="/srv/prompts", ref="main", label=label, commit_sha=sha
        )

    def state_of(label: str) -> str | None:
        state = crud.get_sync_state(session=session, repo="/srv/prompts", ref="main", label=label)
        return state.commit_sha if state else None

    assert state_of("production") is None
    set_state("production", "a" * 40)
    set_state("staging", "b" * 40)
    set_state("production", "c" * 40)
    session.commit()
    assert (state_of("production"), state_of("staging")) == ("c" * 40, "b" * 40)
    assert (
        crud.get_sync_state(session=session, repo="/srv/prompts", ref="dev", label="staging")
        is None
    )


def test_sync_runs_record_errors(session: Session) -> None:
    run = crud.start_sync_run(session=session, repo="r", ref="main", label="production")
    crud.add_sync_error(
        session=session,
        run=run,
        commit_sha="a" * 40,
        file="policies/x.yaml",
        line=3,
        message="unknown key 'modle'",
        feature="x",
    )
    crud.add_sync_error(session=session, run=run, commit_sha="a" * 40, file="p", message="m")
    crud.finish_sync_run(
        session=session, run=run, status="errors", to_commit="b" * 40, versions_created=2
    )
    session.commit()
    [stored] = crud.list_sync_runs(session=session)
    assert (stored.status, stored.error_count, stored.versions_created) == ("errors", 2, 2)
    assert stored.finished_at is not None and stored.finished_at >= stored.started_at
    errors = crud.sync_errors_of(session=session, run=stored)
    assert [(e.file, e.line, e.feature) for e in errors] == [
        ("policies/x.yaml", 3, "x"),
        ("p", None, None),
    ]
    with pytest.raises(ValueError, match="sync status"):
        crud.finish_sync_run(
            session=session, run=run, status="meh", to_commit=None, versions_created=0
        )


def test_tokens_are_stored_hashed_and_shown_once(session: Session) -> None:
    token, plaintext = crud.create_token(session=session, name="ci", role="admin")
    session.commit()
    assert plaintext.startswith("prt_") and len(plaintext) > 40
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(session.exec(select(ApiToken)).one().model_dump())
    found = crud.get_token(session=session, plaintext=plaintext)
    assert found is not None and found.name == "ci" and found.role == "admin"
    assert crud.get_token(session=session, plaintext=plaintext + "x") is None
    crud.touch_token(session=session, token=found)
    assert found.last_used_at is not None
    public = ApiTokenPublic.model_validate(found).model_dump()
    assert "token_hash" not in public and public["name"] == "ci"


def test_token_names_and_roles_are_checked(session: Session) -> None:
    crud.create_token(session=session, name="ci", role="reader")
    with pytest.raises(ValueError, match="already exists"):
        crud.create_token(session=session, name="ci", role="reader")
    with pytest.raises(ValueError, match="role"):
        crud.create_token(session=session, name="other", role="root")


def test_revoked_tokens_stop_working(session: Session) -> None:
    _, plaintext = crud.create_token(session=session, name="ci", role="reader")
    crud.create_token(session=session, name="app", role="reader")
    revoked = crud.revoke_token(session=session, name="ci")
    assert revoked is not None and revoked.revoked_at is not None
    first = revoked.revoked_at
    again = crud.revoke_token(session=session, name="ci")
    assert again is not None and again.revoked_at == first
    assert crud.revoke_token(session=session, name="nope") is None
    session.commit()
    assert crud.get_token(session=session, plaintext=plaintext) is None
    assert [t.name for t in crud.list_tokens(session=session)] == ["app", "ci"]
    assert [t.name for t in crud.list_tokens(session=session, include_revoked=False)] == ["app"]


def test_a_label_move_never_clobbers_a_concurrent_one(engine: Engine) -> None:
    with Session(engine) as setup:
        feature = crud.get_or_create_feature(session=setup, name="a")
        v1, v2, v3 = (add(setup, feature, c) for c in "xyz")
        move(setup, feature, v2)
        setup.commit()
        ids = (_id(feature), _id(v1), _id(v3))
    with Session(engine) as syncing, Session(engine) as oncall:
        feature = syncing.get_one(Feature, ids[0])
        label = crud.get_label(session=syncing, feature=feature, name="production")
        assert label is not None and not label.pinned
        # Meanwhile the on-call engineer rolls back, pinning the label.
        rolled = oncall.get_one(Feature, ids[0])
        move(oncall, rolled, oncall.get_one(Version, ids[1]), pinned=True, action="rollback")
        oncall.commit()
        if engine.dialect.name == "postgresql":
            # A locked re-read sees the rollback, so the sync leaves the pinned label alone.
            label = crud.get_label(
                session=syncing, feature=feature, name="production", for_update=True
            )
            assert label is not None and label.pinned and label.version_id == ids[1]
        else:
            # SQLite's snapshot is older than the rollback: writing from it fails, loudly.
            with pytest.raises(OperationalError, match="locked"):
                move(syncing, feature, syncing.get_one(Version, ids[2]))
    with Session(engine) as check:
        resolved = crud.resolve_label(
            session=check, feature=check.get_one(Feature, ids[0]), name="production"
        )
        assert resolved is not None and resolved[0].pinned and resolved[1].version == 1
