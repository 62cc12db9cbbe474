"""Sticky keys: the same key gets the same arm from every replica and from the client
library, request after request; as the percent grows, keys only move stable → candidate."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import httpx
from support.server import AppServer
from support.wait import wait_for

from registry.client import Registry
from registry.rollouts.controller import Controller

from .scenario import FEATURE, PATH, SERVED_WITHIN_S, Rollouts, arms_by_key
from .traffic import HEALTHY, post_usage

KEYS = [f"customer-{i}" for i in range(300)]
ARM_OF_VERSION = {1: "stable", 2: "candidate"}


def client_arms(client: Registry) -> dict[str, str | None]:
    """Each key's arm as the client library decides it, from its cache, without a request."""
    entry = client.resolve(FEATURE)
    return {key: ARM_OF_VERSION[entry.pick(key).version] for key in KEYS}


def client_percent(client: Registry) -> int | None:
    split = client.resolve(FEATURE).split
    return split[0] if split else None


def reply(
    model: str, messages: Any, params: Any, max_tokens: int, stream: bool, timeout: float
) -> Any:
    """A model call that answers at once, streamed or not."""
    return iter(["Hello ", "there."]) if stream else "Hello there."


def test_a_key_stays_on_its_arm_everywhere_and_only_moves_to_the_candidate(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with ExitStack() as stack:
        a, b = (stack.enter_context(AppServer(reg.app())) for _ in range(2))
        client = stack.enter_context(
            Registry(a.url, reg.reader_token, refresh_s=0.05, report_usage=False)
        )

        by_percent = {}
        for percent in (20, 50):
            wait_for(lambda p=percent: client_percent(client) == p, SERVED_WITHIN_S, f"{percent}%")
            on_a = arms_by_key(admin, a.url, KEYS)
            assert arms_by_key(admin, a.url, KEYS) == on_a  # again: the same answers
            assert arms_by_key(admin, b.url, KEYS) == on_a  # the other replica agrees
            assert client_arms(client) == on_a  # and so does the client library
            for key in KEYS[:10]:  # whose run and stream call the version of the key's arm
                ran = client.run(FEATURE, {"question": "?"}, call=reply, key=key)
                streamed = client.stream(FEATURE, {"question": "?"}, call=reply, key=key)
                assert "".join(streamed) == "Hello there."
                assert streamed.result is not None
                assert ARM_OF_VERSION[ran.version] == on_a[key]
                assert ARM_OF_VERSION[streamed.result.version] == on_a[key]
            rendered = admin.post(
                f"{b.url}{PATH}/render", json={"variables": {"question": "?"}, "key": KEYS[7]}
            ).json()
            assert rendered["rollout"]["arm"] == on_a[KEYS[7]]
            assert rendered["version"] == {"stable": 1, "candidate": 2}[on_a[KEYS[7]]]
            chosen = {key for key, arm in on_a.items() if arm == "candidate"}
            # a fair hash: about `percent` % of the keys (binomial, ±4.5 standard deviations)
            spread = 4.5 * (len(KEYS) * percent / 100 * (1 - percent / 100)) ** 0.5
            assert abs(len(chosen) - len(KEYS) * percent / 100) < spread
            by_percent[percent] = chosen
            post_usage(admin, a.url, HEALTHY.events(1, 30) + HEALTHY.events(2, 30))
            reg.decide(controller)

        assert by_percent[20] < by_percent[50]  # nobody went back to stable
