"""The few Label Studio REST calls bpsrun needs, over plain HTTP. The token travels only in a header."""

from __future__ import annotations

from typing import Any

import requests

from bpsrun.errors import BpsrunError


class LabelStudio:
    def __init__(self, url: str, token: str, timeout_s: float = 60):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise BpsrunError(
                f"labeling.url={self.url}: cannot reach Label Studio ({type(exc).__name__}); start it "
                f"(python -m bpsrun.label.server) or fix the URL"
            ) from None
        if response.status_code in (401, 403):
            raise BpsrunError(
                f"labeling.url={self.url}: Label Studio refused the token (HTTP {response.status_code}); set "
                f"LABEL_STUDIO_API_KEY to your legacy Access Token (Account & Settings)"
            )
        if not response.ok:
            raise BpsrunError(f"Label Studio {method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def project(self, title: str, label_config: str) -> int:
        """The id of the project with this title, created if missing; its labeling config is set either way."""
        found = self.call("GET", "/api/projects", params={"title": title, "page_size": 1000})
        projects = found["results"] if isinstance(found, dict) else found
        matches = [p for p in projects if p.get("title") == title]
        if matches:
            pid = int(matches[0]["id"])
            if matches[0].get("label_config") != label_config:
                self.call("PATCH", f"/api/projects/{pid}", json={"label_config": label_config})
            return pid
        return int(self.call("POST", "/api/projects", json={"title": title, "label_config": label_config})["id"])

    def local_storage(self, project: int, path: str, title: str) -> None:
        """A Local Files storage covering `path` (Label Studio serves local files only under one). Never synced:
        bpsrun imports its own tasks."""
        existing = self.call("GET", "/api/storages/localfiles", params={"project": project})
        if any(s.get("path") == path for s in existing):
            return
        storage = {"project": project, "path": path, "title": title, "use_blob_urls": True, "regex_filter": r".*\.png"}
        self.call("POST", "/api/storages/localfiles", json=storage)

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project}/import", json=tasks)

    def export_min(self, project: int) -> list[dict[str, Any]]:
        """JSON-MIN of every task, unlabeled ones included (without the label key)."""
        params = {"exportType": "JSON_MIN", "download_all_tasks": "true"}
        return self.call("GET", f"/api/projects/{project}/export", params=params)
