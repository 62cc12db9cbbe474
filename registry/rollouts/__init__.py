"""Guarded rollouts (SPEC §10): a new version reaches a label's users a slice at a time,
and is taken back by itself when it does worse than the version it replaces.

    arms.py        which arm a request gets: a stable hash of (feature, key), or random
    machine.py     the state machine: start, step, pause, resume, abort, complete, supersede,
                   moving labels only through `registry.labels.move`
    sequential.py  always-valid (time-uniform) one-sided bounds: the normal-mixture boundary
    guards.py      the guards: both arms' usage in one window → pass, wait or abort
    controller.py  the loop inside `serve` that decides at the end of each interval
    simulate.py    synthetic traffic replayed through the guards, step by step

This package's `__init__` imports nothing: the client library imports `arms` alone.
"""
