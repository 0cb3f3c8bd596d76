"""Reading the results.json a test's suite run wrote: always validated against the JSON Schema in the repo
(vmconform/schema/results.schema.json, with the jsonschema validator) and read back as a RunRecord, so every
record the tests see has the documented shape and round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from vmconform.records import RunRecord

SCHEMA = json.loads((Path(__file__).parents[1] / "vmconform" / "schema" / "results.schema.json").read_text())


def validate(doc: Any) -> None:
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)


def read_results(run_dir: Path) -> dict[str, Any]:
    """The run's results.json (``run_dir`` is a run folder or a reports folder with ``latest``), validated."""
    if (run_dir / "latest").exists():
        run_dir = (run_dir / "latest").resolve()
    doc: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    validate(doc)
    assert RunRecord.from_json(doc).to_json() == doc, "results.json does not round-trip through RunRecord"
    return doc
