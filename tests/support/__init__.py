"""What the tests share: a git repository builder, servers, waiting, PostgreSQL, the CLI.

- `support.git`: `GitRepo`, real git repositories with a fixed author and clock.
- `support.server`: `AppServer` (uvicorn in a thread) and `ServeProcess` (`promptreg
  serve` in a child process, `replicas` of it), ready when /healthz answers.
- `support.wait`: `wait_for(condition, timeout_s, what)`, polling with a deadline.
- `support.postgres`: a throwaway PostgreSQL cluster and a fresh database per test.
- `support.cli`: `promptreg` run in-process as the installed script runs it.
- `support.features`: valid policy and prompt files for a feature.
- `support.clock`: `earlier_today(minutes)`, a usage moment that is today at any hour.

The fixtures built on them are in tests/conftest.py.
"""
