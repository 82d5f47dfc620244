"""The published JSON Schemas: what any Kafka client must send and can expect to receive.

`referral-bus schemas export` writes them under schemas/json/; a test fails when the files
drift from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.events import EVENT_ADAPTER
from schemas.referrals import DeadLetter, Referral

JSON_DIR = Path(__file__).parent / "json"


def _models() -> dict[str, TypeAdapter[Any] | type[BaseModel]]:
    """Every message model on the bus, by file stem (imported lazily: services add theirs)."""
    models: dict[str, TypeAdapter[Any] | type[BaseModel]] = {
        "event": EVENT_ADAPTER,
        "referral": Referral,
        "dead_letter": DeadLetter,
    }
    return models


def schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, model in _models().items():
        schema = model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
        schema["$id"] = f"https://referral-bus.example/schemas/{name}.schema.json"
        out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
