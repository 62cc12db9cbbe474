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

    def sync(self, wait_s: float) -> dict[str, Any]:
        """Have the server sync its configured repository; its summary (waits `wait_s`)."""
        result: dict[str, Any] = self._call(
            "POST", "/v1/sync", timeout=httpx.Timeout(15.0, read=wait_s)
        )
        return result

    def features(self, label: str) -> list[dict[str, Any]]:
        data = self._call("GET", "/v1/features", params={"label": label})
        return list(data["data"])

    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"label": label}
        if version is not None:
            params["version"] = version
        result: dict[str, Any] = self._call("GET", f"/v1/features/{name}", params=params)
        return result

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/features/{name}/versions")["data"])

    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if feature:
            params["feature"] = feature
        if label:
            params["label"] = label
        return list(self._call("GET", "/v1/audit", params=params)["data"])

    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]:
        body = {"label": label, "to_version": to_version, "reason": reason}
        result: dict[str, Any] = self._call("POST", f"/v1/features/{name}/rollback", json=body)
        return result

    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]:
        body = {"label": label, "version": version, "reason": reason}
        result: dict[str, Any] = self._call("POST", f"/v1/features/{name}/promote", json=body)
        return result

    def stats(self, name: str, label: str, window: str) -> dict[str, Any]:
        params = {"label": label, "window": window}
        result: dict[str, Any] = self._call("GET", f"/v1/features/{name}/stats", params=params)
        return result

    def rollouts(self, label: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/rollouts", params={"label": label})["data"])

    def rollout(self, name: str, label: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/v1/features/{name}/rollout", params={"label": label}
        )
        return result

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
        result: dict[str, Any] = self._call("POST", f"/v1/features/{name}/rollout/start", json=body)
        return result

    def rollout_act(self, name: str, action: str, label: str, reason: str | None) -> dict[str, Any]:
        body = {"label": label, "reason": reason}
        result: dict[str, Any] = self._call(
            "POST", f"/v1/features/{name}/rollout/{action}", json=body
        )
        return result
