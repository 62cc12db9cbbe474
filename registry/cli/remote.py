"""The remote backend: label commands through a promptreg server's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from registry.errors import RemoteError, from_status


class RemoteBackend:
    """Calls `/v1` routes with a bearer token; errors become one-line messages."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = 15.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from None
        if response.status_code < 400:
            return response.json()
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text.strip() or response.reason_phrase
        if not isinstance(detail, str):
            detail = str(detail)
        status = response.status_code
        if status == 401:
            raise RemoteError(f"{self.url}: unauthorized ({detail}); check --token/PROMPTREG_TOKEN")
        if status == 403:
            raise RemoteError(f"{self.url}: forbidden ({detail})")
        raise from_status(status, detail) or RemoteError(f"{self.url}: HTTP {status}: {detail}")

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A route's answer that is one JSON object."""
        answer: dict[str, Any] = self._call(method, path, **kwargs)
        return answer

    def _rows(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The `data` of a route's list answer."""
        return list(self._call(method, path, **kwargs)["data"])

    def sync(self, wait_s: float) -> dict[str, Any]:
        """Have the server sync its configured repository; its summary (waits `wait_s`)."""
        return self._object("POST", "/v1/sync", timeout=httpx.Timeout(15.0, read=wait_s))

    def features(self, label: str) -> list[dict[str, Any]]:
        return self._rows("GET", "/v1/features", params={"label": label})

    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"label": label}
        if version is not None:
            params["version"] = version
        return self._object("GET", f"/v1/features/{name}", params=params)

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._rows("GET", f"/v1/features/{name}/versions")

    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if feature:
            params["feature"] = feature
        if label:
            params["label"] = label
        return self._rows("GET", "/v1/audit", params=params)

    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]:
        body = {"label": label, "to_version": to_version, "reason": reason}
        return self._object("POST", f"/v1/features/{name}/rollback", json=body)

    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]:
        body = {"label": label, "version": version, "reason": reason}
        return self._object("POST", f"/v1/features/{name}/promote", json=body)

    def stats(self, name: str, label: str, window: str) -> dict[str, Any]:
        params = {"label": label, "window": window}
        return self._object("GET", f"/v1/features/{name}/stats", params=params)

    def rollouts(self, label: str) -> list[dict[str, Any]]:
        return self._rows("GET", "/v1/rollouts", params={"label": label})

    def rollout(self, name: str, label: str) -> dict[str, Any]:
        return self._object("GET", f"/v1/features/{name}/rollout", params={"label": label})

    def rollout_start(
        self,
        name: str,
        label: str,
        to_version: int,
        steps: list[int] | None,
        interval: str | None,
        reason: str | None,
    ) -> dict[str, Any]:
        body = {
            "label": label,
            "to_version": to_version,
            "steps": steps,
            "interval": interval,
            "reason": reason,
        }
        return self._object("POST", f"/v1/features/{name}/rollout/start", json=body)

    def rollout_act(self, name: str, action: str, label: str, reason: str | None) -> dict[str, Any]:
        body = {"label": label, "reason": reason}
        return self._object("POST", f"/v1/features/{name}/rollout/{action}", json=body)
