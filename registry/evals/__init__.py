"""Evals in the pull request (SPEC §12): a feature's cases, run through its guarded call.

Modules: `check` (what `validate` runs: variables, renders, render assertions, judges —
no model), `assertions` (each assertion on an answer or on rendered messages), `judge`
(the registry's judge prompt, its policy, reading its score), `cache` (answers on disk,
keyed by request), `run` (the working tree and a base ref as server-less clients, cases
in a thread pool), `results` (case runs, pass rates, verdicts), `report` (text,
markdown, JSON, JUnit). The file format of the cases is `registry.definitions.evals`.
"""
