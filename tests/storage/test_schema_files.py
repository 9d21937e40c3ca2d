"""schemas/*.json are the published contract: they must say what the code writes."""

import json
from pathlib import Path

from buff_dataplane.storage.manifest import ManifestEntry
from buff_dataplane.storage.segment import RAW_SCHEMA

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_raw_event_schema_file_matches_the_arrow_schema():
    spec = json.loads((SCHEMAS / "raw_event.v1.json").read_text())
    assert [f["name"] for f in spec["fields"]] == RAW_SCHEMA.names
    for f in spec["fields"]:
        field = RAW_SCHEMA.field(f["name"])
        assert (
            str(field.type).replace("fixed_size_binary[32]", "fixed_size_binary(32)")
            == f["arrow_type"]
        ), f["name"]
        assert field.nullable == f["nullable"], f["name"]


def test_manifest_schema_file_matches_the_entry_struct():
    spec = json.loads((SCHEMAS / "manifest.v1.json").read_text())
    assert sorted(f["name"] for f in spec["fields"]) == sorted(ManifestEntry.__struct_fields__)
