"""Building versions: each commit's features loaded, compared by content, stored when new.

`Versions` keeps, across the commits of one sync, what each feature looks like at the
current commit (its content hash, whether its policy exists, what files it depends on)
and writes the rows: a new version when the content hash changes, a retirement when the
policy file is deleted (and its reversal when it comes back), and one error record per
problem and run. A feature whose files are invalid gets no version for that commit.
"""

from __future__ import annotations

from sqlmodel import Session

from registry import labels
from registry.definitions.content import FeatureDefinition, Layout, VersionContent
from registry.definitions.load import RegistryLoader
from registry.errors import Problem
from registry.store import crud
from registry.store.models import CommitInfo, Feature, SyncRun
from registry.sync.history import Step
from registry.sync.index import DependencyIndex
from registry.sync.summary import SyncSummary


class Versions:
    """The features of the synced ref at the current commit, and the version rows they make."""

    def __init__(
        self,
        session: Session,
        layout: Layout,
        summary: SyncSummary,
        run: SyncRun,
        actor: str,
    ) -> None:
        self.session = session
        self.layout = layout
        self.summary = summary
        self.run = run
        self.actor = actor
        self.index = DependencyIndex(layout)
        self.hashes: dict[str, str] = {}  # feature -> content hash at the current commit
        self.present: set[str] = set()  # features whose policy exists at the current commit
        self.features: dict[str, Feature] = {}
        self.touched: set[str] = set()  # features loaded in this run: their labels may move
        self._reported: set[tuple[str | None, str, int | None, str]] = set()

    # -- where the previous sync stopped ---------------------------------------------------
    def know_stored(self) -> None:
        """Know every stored feature, so a full pass can retire those gone from the tip."""
        for feature in crud.all_features(session=self.session):
            self.features[feature.name] = feature
        for name, policy_path in crud.live_policy_paths(session=self.session):
            self.present.add(name)
            self.index.policy_of[name] = policy_path

    def resume(self, at_last: RegistryLoader) -> None:
        """Rebuild the dependency index at the last synced commit from the stored versions."""
        self.know_stored()
        by_id = {f.id: f for f in self.features.values()}
        for feature_id, text, content_hash, policy_path in crud.newest_contents(
            session=self.session
        ):
            feature = by_id[feature_id]
            if feature.retired:
                continue
            content = VersionContent.from_json(text)
            files = self.index.deps(policy_path, content.prompt.path, list(content.partials))
            self.index.set(feature.name, policy_path, files)
            self.hashes[feature.name] = content_hash
            self.present.add(feature.name)
        for name, path in at_last.policy_files().items():
            if name not in self.hashes:
                self.index.broken.add(name)
                self.index.policy_of.setdefault(name, path)
        s = self.summary
        previous = crud.last_applying_run(
            session=self.session, repo=s.repo, ref=s.ref, label=s.label, before=self.run.id or 0
        )
        if previous is not None:
            self.index.broken.update(crud.features_with_errors(session=self.session, run=previous))

    # -- one commit ------------------------------------------------------------------------
    def apply(self, step: Step) -> None:
        """Load the features `step` may have changed and store what is new."""
        loader, tree = step.loader, step.tree
        if step.whole:
            names = {
                **{n: self.index.policy_of.get(n, "") for n in self.present},
                **loader.policy_files(),
            }
            folders = [self.layout.prompts_dir, self.layout.policies_dir]
            problems = loader.check_links([p for folder in folders for p in tree.walk(folder)])
        else:
            names = self.index.affected(step.changed)
            problems = loader.check_links(step.changed)
        for problem in problems:
            self.error(step.sha, problem)
        if not names:
            return
        for problem in loader.catalog_problems():
            self.error(step.sha, problem)
        for name, path in sorted(names.items()):
            if not path or not loader.exists(path):
                self._retire(name, step.commit)
                continue
            self.touched.add(name)
            result = loader.load_feature(name, path)
            if isinstance(result, FeatureDefinition):
                self._accept(result, step.commit)
                continue
            self.index.broken.add(name)
            self.index.policy_of[name] = path
            self.present.add(name)
            for problem in result:
                self.error(step.sha, problem)

    def _accept(self, loaded: FeatureDefinition, commit: CommitInfo) -> None:
        name = loaded.name
        self.index.broken.discard(name)
        partials = [f"{self.layout.prompts_dir}/{p}" for p in loaded.partials]
        files = self.index.deps(loaded.policy_path, loaded.prompt_path, partials)
        self.index.set(name, loaded.policy_path, files)
        self.present.add(name)
        feature = self.features.get(name)
        if feature is None:
            feature = self.features[name] = crud.get_or_create_feature(
                session=self.session, name=name
            )
        if feature.retired:
            self._set_retired(feature, False, f"policy restored in {commit.sha[:12]}")
            self.summary.unretired.append(name)
        content_hash = self.hashes[name] = loaded.content_hash
        latest = crud.latest_version(session=self.session, feature=feature)
        if latest is not None and latest.content_hash == content_hash:
            return
        same = crud.find_version_by_hash(
            session=self.session, feature=feature, content_hash=content_hash
        )
        if same is not None and same.commit_sha == commit.sha:
            return  # this commit's version exists already (synced into another label)
        crud.add_version(
            session=self.session,
            feature=feature,
            content_hash=content_hash,
            content=loaded.content.canonical_json(),
            prompt_path=loaded.prompt_path,
            policy_path=loaded.policy_path,
            commit=commit,
        )
        self.summary.versions_created += 1

    def _retire(self, name: str, commit: CommitInfo) -> None:
        self.index.drop(name)
        self.index.broken.discard(name)
        self.present.discard(name)
        self.hashes.pop(name, None)
        feature = self.features.get(name)
        if feature is not None and not feature.retired:
            self._set_retired(feature, True, f"policy deleted in {commit.sha[:12]}")
            self.summary.retired.append(name)

    def _set_retired(self, feature: Feature, retired: bool, reason: str) -> None:
        labels.retire(
            self.session,
            feature,
            retired=retired,
            label=self.summary.label,
            actor=self.actor,
            reason=reason,
        )

    def error(self, sha: str, problem: Problem, *, record_only: bool = False) -> None:
        """Record a problem found at commit `sha` (once per run); `record_only`: not in the
        summary's errors, so the run does not fail for it."""
        # A feature that stays broken over many commits is reported at the first one.
        seen = (problem.feature, problem.file, problem.line, problem.message)
        if seen in self._reported:
            return
        self._reported.add(seen)
        if not record_only:
            self.summary.errors.append(
                {
                    "commit": sha,
                    "feature": problem.feature,
                    "file": problem.file,
                    "line": problem.line,
                    "message": problem.message,
                }
            )
        crud.add_sync_error(
            session=self.session,
            run=self.run,
            commit_sha=sha,
            file=problem.file,
            message=problem.message,
            feature=problem.feature,
            line=problem.line,
        )
