"""Waiting for something to happen: poll a condition until a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_STEP_S = 0.005
LONGEST_STEP_S = 0.1


def wait_for(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """Call `condition` until it returns something truthy and return that; fail naming `what`.

    The first polls come quickly (a few milliseconds apart), later ones every 0.1 s at most.
    An exception raised by `condition` propagates at once: a check that can tell the thing
    will never happen (a server process that died) says so instead of running out the clock.
    """
    deadline = time.monotonic() + timeout_s
    step = FIRST_STEP_S
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(min(step, left))
        step = min(step * 2, LONGEST_STEP_S)
