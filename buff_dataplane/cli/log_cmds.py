"""Commands on the raw log: import, verify-log, log ls/show/quarantine."""

from __future__ import annotations

import base64
import json
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import (
    AddressOpt,
    DataOpt,
    ExecutorOpt,
    JsonOpt,
    StateOpt,
    WorkersOpt,
    data_store,
    err,
    no_state_for_local,
    open_data_log,
    print_json,
    progress_bar,
)
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import EXIT_OK, EXIT_VERIFY_FAILED, ValidationError
from buff_dataplane.core.ids import StreamId, validate_venue
from buff_dataplane.pipeline.capture_files import FORMATS
from buff_dataplane.pipeline.executors import DEFAULT_EXECUTOR

log_app = typer.Typer(help="Inspect the raw event log.", no_args_is_help=True)
app.add_typer(log_app, name="log")


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="Capture files to import, in order.")],
    venue: Annotated[str, typer.Option(help="Venue the files were recorded from.")],
    fmt: Annotated[
        str, typer.Option("--format", help=f"Capture file format: {', '.join(FORMATS)}.")
    ],
    data: DataOpt = "./data",
    state_dir: StateOpt = None,
    max_payload_bytes: Annotated[
        int, typer.Option(help="Refuse a file holding a larger message.")
    ] = LogConfig().max_payload_bytes,
    as_json: JsonOpt = False,
) -> int:
    """Import recorded capture files into the raw log (each file once).

    Every message becomes an event of its stream (venue/channel/symbol) with the exact
    bytes, its SHA-256, the exchange time from the payload and the receive time from the
    capture line. Messages the venue parser refuses are quarantined with a reason. A file
    whose framing is broken (not UTF-8, not the format, an oversized message) is refused
    whole: nothing is written. Recorded connections to another product's endpoint (Bybit
    spot in a Bybit capture) and lines that are no received message are skipped and counted.
    """
    from buff_dataplane.pipeline.importer import import_file

    validate_venue(venue)
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    config = LogConfig(max_payload_bytes=max_payload_bytes)
    reports = []
    with open_data_log(data, readonly=False, state_dir=state_dir, config=config) as log:
        for recovered in log.recovery:
            err(f"recovered: {recovered.describe()}")
        for path in files:
            with progress_bar(f"import {path.name}", enabled=not as_json) as bar:
                task = bar.add_task("messages", total=None) if bar else None
                report = import_file(
                    log,
                    path,
                    venue=venue,
                    fmt=fmt,
                    total=partial(bar.update, task) if bar else None,
                    progress=partial(bar.advance, task) if bar else None,
                )
            reports.append(report)
            if not as_json:
                events = sum(report.events.values())
                quarantined = sum(report.quarantined.values())
                print(
                    f"{path}: {report.messages} messages -> {events} events in "
                    f"{len(report.events)} streams, {quarantined} quarantined"
                )
                for reason, n in sorted(report.quarantined.items()):
                    print(f"  quarantined {n} x {reason}")
                for what, n in sorted(report.skipped.items()):
                    print(f"  skipped {n} x {what}")
                for conn, endpoint in sorted(report.other_endpoints.items()):
                    print(f"  skipped connection {conn or '-'}: {endpoint}")
    if as_json:
        print_json({"imports": [r.to_dict() for r in reports]})
    return EXIT_OK


@app.command("verify-log")
def verify_log_cmd(
    data: DataOpt = "./data",
    state_dir: StateOpt = None,
    executor: ExecutorOpt = DEFAULT_EXECUTOR,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Re-hash every payload and segment, walk each manifest chain, check seq continuity.

    Exit 0 when the log is intact; exit 1 naming every fault (file, seq, expected vs
    found); exit 2 when the data directory is not one. With --data s3://..., the sealed
    data is checked in the store, and the journals too when --state-dir is given.
    """
    from buff_dataplane.storage.objstore import LocalStore
    from buff_dataplane.storage.verify import verify_log

    store = data_store(data)
    no_state_for_local(store, state_dir)
    where = store.root if isinstance(store, LocalStore) else store
    report = verify_log(
        where,
        state_dir=Path(state_dir) if state_dir else None,
        executor=executor,
        workers=workers,
        address=address,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        for fault in report.faults:
            print(f"FAULT {fault}")
        for note in report.notes:
            print(f"note: {note}")
        state = "OK" if report.ok else f"FAILED ({len(report.faults)} faults)"
        print(
            f"verify-log {state}: {report.streams} streams, {report.segments} segments, "
            f"{report.events} events, {report.segment_bytes} bytes"
        )
    return EXIT_OK if report.ok else EXIT_VERIFY_FAILED


@log_app.command("ls")
def log_ls(data: DataOpt = "./data", as_json: JsonOpt = False) -> int:
    """List streams with event counts, ingest_seq and time ranges (sealed data)."""
    log = open_data_log(data, readonly=True)
    rows = []
    for sid in log.stream_ids():
        entries = log.manifest(sid)
        if not entries:
            continue
        ex_min = [e.ts_exchange_min for e in entries if e.ts_exchange_min is not None]
        ex_max = [e.ts_exchange_max for e in entries if e.ts_exchange_max is not None]
        rows.append(
            {
                "stream_id": str(sid),
                "segments": len(entries),
                "events": sum(e.rows for e in entries),
                "seq_from": entries[0].seq_from,
                "seq_to": entries[-1].seq_to,
                "ts_exchange_min": min(ex_min) if ex_min else None,
                "ts_exchange_max": max(ex_max) if ex_max else None,
                "ts_ingest_min": min(e.ts_ingest_min for e in entries),
                "ts_ingest_max": max(e.ts_ingest_max for e in entries),
                "file_bytes": sum(e.file_bytes for e in entries),
            }
        )
    if as_json:
        print_json({"streams": rows})
        return EXIT_OK
    if not rows:
        print("no sealed streams")
    for r in rows:
        print(
            f"{r['stream_id']:<44} {r['events']:>10} events  seq {r['seq_from']}..{r['seq_to']}  "
            f"ingest {_iso(r['ts_ingest_min'])} .. {_iso(r['ts_ingest_max'])}  "
            f"{r['segments']} segments"
        )
    return EXIT_OK


def _iso(ms: object) -> str:
    import datetime as dt

    if not isinstance(ms, int):
        return "-"
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )


@log_app.command("show")
def log_show(
    stream: Annotated[str, typer.Argument(help="venue/channel/symbol")],
    data: DataOpt = "./data",
    seq_from: Annotated[int | None, typer.Option(help="First ingest_seq (inclusive).")] = None,
    seq_to: Annotated[int | None, typer.Option(help="Last ingest_seq (inclusive).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 100,
) -> int:
    """Print the events of a stream as JSON lines (payload as text, or base64 if binary)."""
    from buff_dataplane.storage.reader import scan

    sid = StreamId.parse(stream)
    log = open_data_log(data, readonly=True)
    if sid not in log.stream_ids():
        raise ValidationError(f"no stream {sid} in {log.url}")
    left = limit
    for batch in scan(log, [sid], seq_from=seq_from, seq_to=seq_to):
        for row in batch.slice(0, left).to_pylist():
            payload: bytes = row.pop("payload_raw")
            row["payload_sha256"] = row["payload_sha256"].hex()
            try:
                row["payload"] = payload.decode("utf-8")
            except UnicodeDecodeError:
                row["payload_b64"] = base64.b64encode(payload).decode()
            sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
        left -= min(left, batch.num_rows)
        if left == 0:
            break
    return EXIT_OK


@log_app.command("quarantine")
def log_quarantine(
    data: DataOpt = "./data",
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    as_json: JsonOpt = False,
) -> int:
    """List quarantined payloads: counts by venue and reason, then each record."""
    from buff_dataplane.storage.quarantine import quarantine_records

    if venue is not None:
        validate_venue(venue)
    with open_data_log(data, readonly=True) as log:
        records = [r for r in quarantine_records(log) if venue in (None, r.venue)]
    if as_json:
        print_json(
            {
                "records": [
                    {k: getattr(r, k) for k in r.__struct_fields__ if k != "payload_b64"}
                    for r in records
                ]
            }
        )
        return EXIT_OK
    print(f"{len(records)} quarantined payloads")
    for r in records:
        print(f"{r.venue} {_iso(r.received_ms)} {r.reason}: {r.detail} [{r.payload_sha256[:16]}]")
    return EXIT_OK
