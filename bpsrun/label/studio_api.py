"""The few Label Studio REST calls bpsrun needs, over plain HTTP. The token travels only in a header."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import requests

from bpsrun.errors import BpsrunError

MESSAGE_CHARS = 300  # of an error body, cut at a word boundary


def shorten(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` on one line, about `limit` characters, cut between words, never inside one: a word (a path, say)
    that crosses the limit is dropped, or kept whole when the cut would lose more than half the text."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    space = text.rfind(" ", 0, limit - 3)
    if space < limit // 2:
        space = text.find(" ", limit - 3)
        if space == -1:
            return text
    return text[:space].rstrip(" ,;:") + " ..."


def error_text(response: requests.Response) -> str:
    """What Label Studio said: its `detail` and validation errors for JSON bodies, the page's text for HTML."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
        if "<" in text:
            title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
            text = re.sub(r"<(script|style).*?</\1>|<[^>]+>", " ", title.group(1) if title else text, flags=re.S)
        return shorten(html.unescape(text)) or response.reason or "no body"
    if not isinstance(body, dict):
        return shorten(json.dumps(body))
    parts = [str(body["detail"])] if body.get("detail") else []
    errors = body.get("validation_errors")
    if isinstance(errors, dict):
        for key, value in errors.items():
            values = value if isinstance(value, list) else [value]
            label = "" if key == "non_field_errors" else f"{key}: "
            parts.append(label + " ".join(str(v) for v in values))
    if not parts:
        parts = [json.dumps(body)]
    return shorten("; ".join(parts))


def strings(data: Any) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        data = list(data.values())
    return [s for item in data for s in strings(item)] if isinstance(data, list) else []


class LabelStudio:
    def __init__(self, url: str, token: str, timeout_s: float = 60):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, refusal_is_token: bool = True, **kwargs: Any) -> requests.Response:
        """The response; an unreachable server, and (unless told otherwise) HTTP 401/403, as BpsrunError."""
        try:
            response = self.http.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise BpsrunError(
                f"labeling.url={self.url}: cannot reach Label Studio ({type(exc).__name__}); start it "
                f"(python -m bpsrun.label.server --detach) or fix the URL"
            ) from None
        if refusal_is_token and response.status_code in (401, 403):
            raise BpsrunError(
                f"labeling.url={self.url}: Label Studio refused the token (HTTP {response.status_code}); set "
                f"LABEL_STUDIO_API_KEY to your legacy Access Token (Account & Settings), or "
                f"$(cat <data-dir>/bpsrun-token) for python -m bpsrun.label.server"
            )
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.ok:
            raise BpsrunError(f"Label Studio {method} {path}: HTTP {response.status_code}: {error_text(response)}")
        return response.json() if response.content else None

    def find_project(self, title: str) -> dict[str, Any] | None:
        found = self.call("GET", "/api/projects", params={"title": title, "page_size": 1000})
        projects = found["results"] if isinstance(found, dict) else found
        return next((p for p in projects if p.get("title") == title), None)

    def project(self, title: str, label_config: str, settings: dict[str, Any] | None = None) -> tuple[int, bool]:
        """The id of the project with this title, created if missing (and whether it was); its labeling config
        and `settings` (other project fields, e.g. overlap) are set either way, PATCHed only where they differ."""
        wanted = {"label_config": label_config, **(settings or {})}
        match = self.find_project(title)
        if match is not None:
            pid = int(match["id"])
            changed = {k: v for k, v in wanted.items() if match.get(k) != v}
            if changed:
                self.call("PATCH", f"/api/projects/{pid}", json=changed)
            return pid, False
        created = self.call("POST", "/api/projects", json={"title": title, **wanted})
        return int(created["id"]), True

    def delete_project(self, project: int) -> None:
        self.call("DELETE", f"/api/projects/{project}")

    def document_root(self, project: int) -> str | None:
        """The folder this Label Studio serves local files below (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT), read
        from its answer to validating a Local Files storage at `/`; None when it does not say."""
        response = self.request("POST", "/api/storages/localfiles/validate", json={"project": project, "path": "/"})
        try:
            said = "\n".join(strings(response.json()))
        except ValueError:
            said = response.text
        found = re.search(r'LOCAL_FILES_DOCUMENT_ROOT="([^"]*)"', said)
        return found.group(1) if found else None

    def local_storage(self, project: int, path: str, title: str) -> None:
        """A Local Files storage covering `path` (Label Studio serves local files only under one). Never synced:
        bpsrun imports its own tasks."""
        existing = self.call("GET", "/api/storages/localfiles", params={"project": project})
        if any(s.get("path") == path for s in existing):
            return
        storage = {"project": project, "path": path, "title": title, "use_blob_urls": True, "regex_filter": r".*\.png"}
        self.call("POST", "/api/storages/localfiles", json=storage)

    def get_file(self, path: str) -> requests.Response:
        """A file Label Studio serves (e.g. a task's `/data/local-files/?d=...` image), as it would to a browser
        (403 here means local files serving is off, 404 a file outside every storage or the document root)."""
        return self.request("GET", path, refusal_is_token=False)

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> None:
        self.call("POST", f"/api/projects/{project}/import", json=tasks)

    def export_min(self, project: int) -> list[dict[str, Any]]:
        """JSON-MIN of every task, unlabeled ones included (without the label key)."""
        params = {"exportType": "JSON_MIN", "download_all_tasks": "true"}
        return self.call("GET", f"/api/projects/{project}/export", params=params)

    def tasks(self, project: int) -> list[dict[str, Any]]:
        """Every task of the project with Label Studio's own state: `overlap` (annotations it asks for) and
        `is_labeled` (that many are in)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            found = self.call("GET", "/api/tasks/", params={"project": project, "page": page, "page_size": 500})
            out += found["tasks"]
            if not found["tasks"] or len(out) >= found["total"]:
                return out
            page += 1
