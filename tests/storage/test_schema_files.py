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


def test_bars_digest_spec_lists_the_fields_in_encoding_order_and_its_example_holds():
    import re

    from buff_dataplane.core.bars import BAR_FIELDS, Bar, canonical_row

    text = (SCHEMAS / "bars.v1.md").read_text()
    names = []
    for line in text.splitlines():
        m = re.match(r"\| (\d+(?:-\d+)?) \| ([a-z_, ]+) \|", line)
        if m:
            names += [n.strip() for n in m.group(2).split(",")]
    assert tuple(names) == BAR_FIELDS
    example = text.split("```\n")[1].split("\n")[0]
    values = example.split("|")
    bar = Bar(
        **{
            f: (
                int(v)
                if v and f.endswith(("_ms", "_count", "_id", "seq_min", "seq_max"))
                else None
                if v == "" and f in ("first_trade_id", "last_trade_id", "seq_min", "seq_max")
                else v == "1"
                if f == "backfilled"
                else v
            )
            for f, v in zip(BAR_FIELDS, values, strict=True)
        }
    )
    assert canonical_row(bar) == (example + "\n").encode()
