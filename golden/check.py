"""make golden-check / golden-update: the golden regression check.

For every case of golden.make: the committed capture must equal what the generator makes
now; importing it into a fresh log must verify clean; and each stream's event count, seq
range, exchange-time range and payload digest must equal golden/digests.json. An entry
in digests.json with no case, or a case with no entry, fails the check. Only
``--update`` rewrites digests.json, and it prints what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from buff_dataplane.pipeline.importer import import_file
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.verify import verify_log
from golden.make import CASES, capture_path, render

DIGESTS = Path(__file__).resolve().parent / "digests.json"


def _digests_of(name: str) -> dict[str, object]:
    venue, _ = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with open_log(data) as log:
            import_file(log, capture_path(name), venue=venue, fmt="ndjson")
        report = verify_log(data)
        if not report.ok:
            raise SystemExit(f"golden {name}: verify-log failed: {report.faults[0]}")
        log = open_log(data, readonly=True)
        streams: dict[str, object] = {}
        for sid in log.stream_ids():
            entries = log.manifest(sid)
            digest = hashlib.sha256()
            for e in entries:
                digest.update(bytes.fromhex(e.payload_digest))
            ex_min = [e.ts_exchange_min for e in entries if e.ts_exchange_min is not None]
            ex_max = [e.ts_exchange_max for e in entries if e.ts_exchange_max is not None]
            streams[str(sid)] = {
                "events": sum(e.rows for e in entries),
                "seq_to": entries[-1].seq_to,
                "segments": len(entries),
                "ts_exchange_min": min(ex_min) if ex_min else None,
                "ts_exchange_max": max(ex_max) if ex_max else None,
                "payload_digest_chain": digest.hexdigest(),
            }
    capture = capture_path(name).read_bytes()
    return {"capture_sha256": hashlib.sha256(capture).hexdigest(), "streams": streams}


def _diff(old: object, new: object, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{path}/{key}")
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite golden/digests.json")
    args = parser.parse_args(argv)
    problems: list[str] = []
    for name in sorted(CASES):
        path = capture_path(name)
        if not path.exists() or path.read_bytes() != render(name):
            problems.append(f"{path.name}: differs from what golden.make generates now")
    if problems and not args.update:
        print("\n".join(f"FAIL {p}" for p in problems))
        return 1
    current = {name: _digests_of(name) for name in sorted(CASES)}
    stored = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    changes = _diff(stored, current)
    if args.update:
        DIGESTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print("\n".join(changes) if changes else "golden digests unchanged")
        return 0
    for name in sorted(set(stored) - set(current)):
        problems.append(f"digests.json entry {name!r} has no golden case (unused)")
    for name in sorted(set(current) - set(stored)):
        problems.append(f"golden case {name!r} has no entry in digests.json")
    problems += [c for c in changes if c.split("/")[1] in stored and c.split("/")[1] in current]
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        return 1
    events = sum(
        s["events"]
        for c in current.values()
        for s in c["streams"].values()  # type: ignore[attr-defined]
    )
    print(f"golden-check OK: {len(current)} cases, {events} events, digests match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
