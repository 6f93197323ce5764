"""Lightly's metadata folder: `.lightly/metadata/schema.json` and one `<stem>.json` per pool image."""

from __future__ import annotations

import json
from pathlib import Path

from bpsrun.files import atomic_dir, atomic_write_text


def value_type(values: list[str]) -> str:
    def all_parse(kind: type) -> bool:
        try:
            [kind(v) for v in values]
        except ValueError:
            return False
        return True

    if all_parse(int):
        return "NUMERIC_INT"
    if all_parse(float):
        return "NUMERIC_FLOAT"
    return "CATEGORICAL_STRING"


def convert(value: str, kind: str) -> int | float | str:
    return {"NUMERIC_INT": int, "NUMERIC_FLOAT": float}.get(kind, str)(value)


def schema(columns: list[str], rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {
            "name": col.replace("_", " ").title(),
            "path": col,
            "defaultValue": "nothing" if kind == "CATEGORICAL_STRING" else 0,
            "valueDataType": kind,
        }
        for col, kind in ((c, value_type([r[c] for r in rows])) for c in columns)
    ]


def write_metadata(folder: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Write `folder` (…/.lightly/metadata) for the given manifest rows, all at once."""
    entries = schema(columns, rows)
    with atomic_dir(folder) as tmp:
        atomic_write_text(tmp / "schema.json", json.dumps(entries, indent=2))
        for row in rows:
            meta = {e["path"]: convert(row[e["path"]], e["valueDataType"]) for e in entries}
            record = {"file_name": row["file"], "type": "image", "metadata": meta}
            (tmp / f"{Path(row['file']).with_suffix('')}.json").write_text(json.dumps(record))
