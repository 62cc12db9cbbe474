"""Versions: numbered, immutable snapshots of a feature, and their lookups."""

import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, and_, col, func, select

from registry.store.models import CommitInfo, Feature, Label, Version, VersionPublic, utcnow
from registry.store.models import pk as _pk

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def get_version(*, session: Session, feature: Feature, version: int) -> Version | None:
    """Version number ``version`` of the feature, or None."""
    stmt = select(Version).where(Version.feature_id == _pk(feature), Version.version == version)
    return session.exec(stmt).first()


def latest_version(*, session: Session, feature: Feature) -> Version | None:
    """The feature's newest version, or None before its first."""
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature))
        .order_by(col(Version.version).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def find_version_by_hash(
    *, session: Session, feature: Feature, content_hash: str
) -> Version | None:
    """The newest version of the feature with this content hash, or None."""
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature), Version.content_hash == content_hash)
        .order_by(col(Version.version).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def versions_of(*, session: Session, feature: Feature) -> list[VersionPublic]:
    """All versions of the feature, newest first, each with the label names pointing at it."""
    labels: defaultdict[int, list[str]] = defaultdict(list)
    label_rows = session.exec(
        select(Label.version_id, Label.name)
        .where(Label.feature_id == _pk(feature))
        .order_by(col(Label.name))
    ).all()
    for version_id, name in label_rows:
        labels[version_id].append(name)
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature))
        .order_by(col(Version.version).desc())
    )
    return [
        VersionPublic(
            feature=feature.name,
            version=v.version,
            content_hash=v.content_hash,
            prompt_path=v.prompt_path,
            policy_path=v.policy_path,
            commit=v.commit,
            created_at=v.created_at,
            labels=labels[_pk(v)],
        )
        for v in session.exec(stmt).all()
    ]


def add_version(
    *,
    session: Session,
    feature: Feature,
    content_hash: str,
    content: str,
    prompt_path: str,
    policy_path: str,
    commit: CommitInfo,
    at: datetime | None = None,
) -> Version:
    """Store a new version of the feature under the next number (1, 2, 3… per feature)."""
    if not _SHA256_HEX.fullmatch(content_hash):
        raise ValueError(f"content_hash must be 64 lowercase hex digits, got {content_hash!r}")
    newest = session.exec(
        select(func.max(Version.version)).where(Version.feature_id == _pk(feature))
    ).one()
    version = Version(
        feature_id=_pk(feature),
        version=(newest or 0) + 1,
        content_hash=content_hash,
        content=content,
        prompt_path=prompt_path,
        policy_path=policy_path,
        commit_sha=commit.sha,
        commit_author=commit.author,
        commit_email=commit.email,
        committed_at=commit.committed_at,
        commit_message=commit.message,
        created_at=at or utcnow(),
    )
    session.add(version)
    session.flush()
    return version


def version_by_id(*, session: Session, version_id: int) -> Version:
    """The version row with this primary key (it must exist)."""
    return session.get_one(Version, version_id)


def newest_version_below(*, session: Session, feature: Feature, below: int) -> int | None:
    """The highest version number of the feature under ``below``, or None."""
    older = session.exec(
        select(func.max(Version.version)).where(
            Version.feature_id == _pk(feature), Version.version < below
        )
    ).one()
    return int(older) if older is not None else None


def versions_newest_first(*, session: Session, feature: Feature) -> list[Version]:
    """Every version row of the feature, newest first."""
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature))
        .order_by(col(Version.version).desc())
    )
    return list(session.exec(stmt).all())


def newest_versions(feature_ids: list[int] | None = None) -> Any:
    """A subquery: each feature's newest version number (`feature_id`, `number`), of the
    features `feature_ids` only when given."""
    stmt = select(col(Version.feature_id), func.max(Version.version).label("number"))
    if feature_ids is not None:
        stmt = stmt.where(col(Version.feature_id).in_(feature_ids))
    return stmt.group_by(col(Version.feature_id)).subquery()


def newest_contents(*, session: Session) -> list[tuple[int, str, str, str]]:
    """(feature id, content, content hash, policy path) of each feature's newest version."""
    newest = newest_versions()
    stmt = select(
        Version.feature_id, Version.content, Version.content_hash, Version.policy_path
    ).join(
        newest,
        and_(
            col(Version.feature_id) == newest.c.feature_id,
            col(Version.version) == newest.c.number,
        ),
    )
    return [(f, c, h, p) for f, c, h, p in session.exec(stmt).all()]
