"""Guarded rollouts: a new version reaches a slice of requests at a time (SPEC §10).

sequential.py  always-valid (time-uniform) one-sided bounds: the normal-mixture boundary
guards.py      the guards: both arms' usage in one window → pass, wait or abort
simulate.py    synthetic traffic replayed through the guards, step by step
"""
