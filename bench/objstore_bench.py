"""Object store: the overhead of keeping the raw log's sealed data in S3 against a local
directory, on the same data (median of 3 each).

S3 is moto's server on loopback (the only S3 server here), started in a child process
(``ThreadedMotoServer`` on 127.0.0.1, port 0) so its request handling does not take the
GIL of the process being measured; the store is built by ``store_for("s3://...")`` from
the ``AWS_*`` environment variables alone, as the CLI builds it. moto keeps every object
in memory, so the data is moderate: 400k simulated Binance USD-M aggTrades (two streams
of 200k, ~185-byte payloads, ~74 MB of payloads) sealed into 16 segments of 25k events.

Measured, local vs S3, the two sides alternating within each of the 3 runs:
  write      append_batch (1,000 events a call) to both streams, seal, close; fsync on
             (the journals stay local in both cases; S3 gets the sealed segments and
             manifest entries); write_no_fsync the same with fsync off on both sides
  read       open the log read-only and stream every sealed segment back with
             reader.scan (all columns); and once with one column, which through S3 must
             fetch only a fraction of the bytes (ranged GETs)
  verify     verify_log over the data directory / the store, executor="serial" (in this
             one process on both sides: the ratio is the storage overhead only)
  canonicalize  canonicalize(venue="binance-usdm", timeframes=("1m",),
             executor="serial") over the log opened read-only; the bars tree is deleted
             after each sample, so every sample builds and publishes revision 1. On S3 the
             task first downloads its stream's segments into a temp dir (SegmentFiles)
  objects    put_new of a 1 MB object (mean of 5 a sample); chain_append of 200
             manifest-like entries; chain_read of those 200; and, S3 only, one HEAD
             request (median of 100): the per-request floor
Each S3 figure comes with the requests it made (counted by a botocore event hook) and
the bytes its GETs returned, which is what the plausibility checks look at.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.bars_bench import _chunks
from bench.common import WORK, peak_rss_mb, timed, write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.pipeline.canonicalize import canonicalize
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.storage import layout, reader
from buff_dataplane.storage.bars_store import BARS_DIR
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import (
    LocalStore,
    ObjectStore,
    S3Store,
    store_for,
    task_store,
)
from buff_dataplane.storage.verify import verify_log

STREAMS = {"BTCUSDT": "binance-usdm/trade/BTC-USDT-PERP",
           "ETHUSDT": "binance-usdm/trade/ETH-USDT-PERP"}  # fmt: skip
EVENTS_PER_STREAM = 200_000
SEGMENT_EVENTS = 25_000  # -> 8 segments a stream, 16 in all (the default is 1M)
BATCH = 1_000  # events per append_batch call, as a capture draining its queue
RUNS = 3
PUT_BYTES = 1 << 20
PUTS_PER_SAMPLE = 5
HEADS = 100
CHAIN_ENTRIES = 200
VENUE = "binance-usdm"
TIMEFRAMES = ("1m",)
ONE_COLUMN = ["event_ts_exchange_ms"]  # scan adds ingest_seq and event_ts_ingest_ms
MS_KEYS = ("put_new_1mb", "chain_append_200", "chain_read_200")

_MOTO = """
import logging
import sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(port, flush=True)
sys.stdin.read()  # until the bench closes our stdin
server.stop()
"""

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
              "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")  # fmt: skip


# -- moto, the environment, request counting -------------------------------------------


@contextmanager
def moto_server() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """moto's S3 on 127.0.0.1 in a child process; yields (endpoint, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=15)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


@contextmanager
def aws_env(endpoint: str, scratch: Path) -> Iterator[None]:
    """Hermetic AWS_* variables pointing at moto, restored afterwards."""
    values = {
        **_AWS_ENV,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
    }
    saved = {k: os.environ.get(k) for k in (*values, *_AWS_CLEAR)}
    for k in _AWS_CLEAR:
        os.environ.pop(k, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Requests:
    """Counts the S3 API calls of the clients watched, and the bytes their GETs returned."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.get_bytes = 0
        self._watched: list[Any] = []
        self.watch(client)

    def watch(self, client: Any) -> None:
        """Count this client's calls too (once per client)."""
        if any(c is client for c in self._watched):
            return
        self._watched.append(client)
        client.meta.events.register("before-parameter-build.s3", self._before)
        client.meta.events.register("after-call.s3.GetObject", self._after_get)

    def _before(self, event_name: str = "", params: Any = None, **_: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        if op == "GetObject" and params and params.get("Range"):
            op = "GetObject(range)"
        self.calls[op] += 1

    def _after_get(self, parsed: Any = None, **_: Any) -> None:
        if parsed:
            self.get_bytes += int(parsed.get("ContentLength", 0) or 0)

    def reset(self) -> None:
        self.calls.clear()
        self.get_bytes = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": sum(self.calls.values()),
            "by_operation": dict(sorted(self.calls.items())),
            "get_bytes": self.get_bytes,
        }


# -- the data --------------------------------------------------------------------------


Columns = tuple[list[bytes], list[int | None], list[int]]


def make_data() -> dict[str, Columns]:
    """Per stream: payloads, exchange times, ingest times (3 ms after the trade)."""
    out: dict[str, Columns] = {}
    for seed, (venue_symbol, stream) in enumerate(sorted(STREAMS.items()), 1):
        trades = [t for chunk in _chunks(EVENTS_PER_STREAM, venue_symbol, seed * 100)
                  for t in chunk]  # fmt: skip
        out[stream] = (
            [agg_trade_message(t) for t in trades],
            [t.ts_ms for t in trades],
            [t.ts_ms + 3 for t in trades],
        )
    return out


CONFIG = LogConfig(segment_max_events=SEGMENT_EVENTS)  # fsync on, as the default
NO_FSYNC = LogConfig(segment_max_events=SEGMENT_EVENTS, fsync=False)


def write_log(
    root: Path | ObjectStore, data: dict[str, Columns], state: Path | None, config: LogConfig
) -> None:
    """Append the streams in interleaved batches (as a capture does), seal, close."""
    with open_log(root, config, state_dir=state) as log:
        writers = {stream: log.writer(stream) for stream in data}
        for k in range(0, EVENTS_PER_STREAM, BATCH):
            for stream, (payloads, ts_ex, ts_in) in data.items():
                writers[stream].append_batch(
                    payloads[k : k + BATCH], ts_ex[k : k + BATCH], ts_in[k : k + BATCH]
                )
        for w in writers.values():
            w.seal()


def read_log(root: Path | ObjectStore, columns: list[str] | None = None) -> int:
    with open_log(root, readonly=True) as log:
        return sum(b.num_rows for b in reader.scan(log, columns=columns))


# -- the two sides ---------------------------------------------------------------------


class Side:
    """One store kind: fresh empty stores on demand, the kept log, its request counter."""

    def __init__(self, name: str, base: Path, endpoint: str | None = None) -> None:
        self.name = name
        self.base = base
        self.endpoint = endpoint
        self.requests: Requests | None = None
        self._client: Any = None
        self._made: list[str] = []  # buckets, or local directories
        self._names = iter(range(1_000_000))
        # the last log written: what open_log takes, its state_dir, the store
        self.root: Path | ObjectStore = base
        self.state: Path | None = None
        self.store: ObjectStore = LocalStore(base)

    def fresh(self) -> None:
        """Make an empty store (not timed) and make it the side's current log."""
        tag = uuid.uuid4().hex[:10]
        if self.endpoint is None:
            root = self.base / f"local-{tag}"
            self._made.append(str(root))
            self.root, self.state, self.store = root, None, LocalStore(root)
            return
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")  # from the AWS_* variables, as store_for
        bucket = f"bench-{tag}"
        self._client.create_bucket(Bucket=bucket)
        self._made.append(bucket)
        store = store_for(f"s3://{bucket}/desk")
        assert isinstance(store, S3Store)
        self.requests = Requests(store.client)
        self.root, self.state, self.store = store, self.base / f"state-{tag}", store

    def name_for(self, what: str) -> str:
        return f"bench/{what}-{next(self._names)}"

    def drop_bars(self) -> None:
        """Remove the current log's bars tree (what canonicalize published)."""
        if isinstance(self.store, LocalStore):
            shutil.rmtree(self.store.path(BARS_DIR), ignore_errors=True)
            return
        assert isinstance(self.store, S3Store)
        store, client = self.store, self._client
        prefix = f"{store.prefix}/{BARS_DIR}/" if store.prefix else f"{BARS_DIR}/"
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=prefix
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=store.bucket, Delete={"Objects": keys})

    def drop_all_but_last(self) -> None:
        """Free moto's memory (or the disk) of every store but the current one."""
        for made in self._made[:-1]:
            self._drop(made)
        self._made = self._made[-1:]

    def close(self) -> None:
        for made in self._made:
            self._drop(made)
        self._made = []

    def _drop(self, made: str) -> None:
        if self.endpoint is None:
            shutil.rmtree(made, ignore_errors=True)
            return
        client = self._client
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=made):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=made, Delete={"Objects": keys})
        client.delete_bucket(Bucket=made)


def _stats(samples: list[float]) -> dict[str, object]:
    return {
        "seconds_median": round(statistics.median(samples), 4),
        "seconds_samples": [round(s, 4) for s in samples],
    }


def measure(sides: list[Side], data: dict[str, Columns], events: int) -> dict[str, Any]:
    """Every measure on every side, the sides alternating within each run (the box is
    shared, so both see the same background load); median of RUNS."""
    out: dict[str, dict[str, Any]] = {side.name: {} for side in sides}

    def both(key: str, fn: Callable[[Side], float]) -> None:
        samples: dict[str, list[float]] = {side.name: [] for side in sides}
        for run in range(RUNS):
            for side in sides if run % 2 == 0 else sides[::-1]:
                if side.requests:
                    side.requests.reset()
                samples[side.name].append(fn(side))
                if side.requests:
                    out[side.name].setdefault(key, {})["s3_requests_last_run"] = (
                        side.requests.snapshot()
                    )
        for side in sides:
            out[side.name].setdefault(key, {}).update(_stats(samples[side.name]))

    def per_s(key: str) -> None:
        for side in sides:
            res = out[side.name][key]
            res["events_per_s"] = round(events / res["seconds_median"])

    # 1. write: a fresh store each run; the last one (fsync on) is kept for the rest.
    def write(config: LogConfig) -> Callable[[Side], float]:
        def go(side: Side) -> float:
            side.fresh()
            seconds = timed(lambda: write_log(side.root, data, side.state, config))
            side.drop_all_but_last()
            return seconds

        return go

    both("write_no_fsync", write(NO_FSYNC))
    both("write", write(CONFIG))
    per_s("write_no_fsync")
    per_s("write")

    payload_bytes = sum(len(p) for cols in data.values() for p in cols[0])
    for side in sides:
        report = verify(side)
        assert report.ok and report.events == events, report.to_dict()
        out[side.name]["log"] = {"segments": report.segments, "segment_bytes": report.segment_bytes}

    # 2. read: every sealed segment, all columns; then one column.
    def read(columns: list[str] | None) -> Callable[[Side], float]:
        def go(side: Side) -> float:
            start = time.perf_counter()
            rows = read_log(side.root, columns)
            seconds = time.perf_counter() - start
            assert rows == events, rows
            return seconds

        return go

    both("read", read(None))
    both("read_one_column", read(ONE_COLUMN))
    per_s("read")
    per_s("read_one_column")
    for side in sides:
        res = out[side.name]["read"]
        seconds = res["seconds_median"]
        res["stored_mb_per_s"] = round(out[side.name]["log"]["segment_bytes"] / 1e6 / seconds, 1)
        res["payload_mb_per_s"] = round(payload_bytes / 1e6 / seconds, 1)
        out[side.name]["read_one_column"]["columns"] = ONE_COLUMN

    # 3. verify
    def verify_timed(side: Side) -> float:
        start = time.perf_counter()
        report = verify(side)
        seconds = time.perf_counter() - start
        assert report.ok and report.events == events
        return seconds

    both("verify", verify_timed)
    per_s("verify")
    for side in sides:
        out[side.name]["verify"]["executor"] = "serial"

    # 4. canonicalize: 1m bars of both symbols from the same log, opened read-only; the
    # bars tree is removed after each sample (not timed), so each builds and publishes
    # revision 1 (on a second run with the bars present nothing would change or be written).
    def canonicalize_timed(side: Side) -> float:
        start = time.perf_counter()
        with open_log(side.store if side.state else side.root, readonly=True) as log:
            outcomes = canonicalize(log, venue=VENUE, timeframes=TIMEFRAMES, executor="serial")
        seconds = time.perf_counter() - start
        assert [(o.revision, o.reason) for o in outcomes] == [(1, "initial")] * len(STREAMS)
        side.drop_bars()
        return seconds

    for side in sides:
        if side.requests:  # the build task reads through its own store (task_store)
            side.requests.watch(task_store(side.store.url()).client)
    both("canonicalize", canonicalize_timed)
    per_s("canonicalize")
    for side in sides:
        out[side.name]["canonicalize"].update(
            {"executor": "serial", "venue": VENUE, "timeframes": list(TIMEFRAMES)}
        )

    # 5. single objects: put_new 1 MB; chain_append x200, then chain_read of those.
    blob = os.urandom(PUT_BYTES)
    lines = [_entry_line(i) for i in range(CHAIN_ENTRIES)]
    chains: dict[str, list[str]] = {side.name: [] for side in sides}

    def put(side: Side) -> float:  # one sample: the mean of PUTS_PER_SAMPLE puts
        keys = [side.name_for("blob") + ".bin" for _ in range(PUTS_PER_SAMPLE)]
        start = time.perf_counter()
        for key in keys:
            assert side.store.put_new(key, blob)
        return (time.perf_counter() - start) / PUTS_PER_SAMPLE

    def append_chain(side: Side) -> float:
        name = side.name_for("chain") + "/manifest"
        chains[side.name].append(name)
        start = time.perf_counter()
        for i, line in enumerate(lines):
            side.store.chain_append(name, i, line)
        return time.perf_counter() - start

    def read_chain(side: Side) -> float:
        name = chains[side.name].pop(0)
        start = time.perf_counter()
        got = side.store.chain_read(name)
        seconds = time.perf_counter() - start
        assert got.count == CHAIN_ENTRIES and not got.faults, got.faults
        return seconds

    both("put_new_1mb", put)
    both("chain_append_200", append_chain)
    both("chain_read_200", read_chain)
    for side in sides:
        for key in MS_KEYS:
            res = out[side.name][key]
            samples = res.pop("seconds_samples")
            res.pop("seconds_median")
            res.update(_ms(samples))
            if key == "put_new_1mb":
                res["puts_per_sample"] = PUTS_PER_SAMPLE
            else:
                res["per_entry_ms"] = round(res["ms_median"] / CHAIN_ENTRIES, 3)

    # The per-request floor: one HEAD of a small object, the cheapest call there is.
    for side in sides:
        if isinstance(side.store, S3Store):
            store = side.store
            heads = [timed(lambda: store.size(layout.MARKER)) for _ in range(HEADS)]  # noqa: B023
            out[side.name]["head_object"] = {
                "requests": HEADS,
                "ms_median": round(statistics.median(heads) * 1000, 2),
                "ms_p90": round(sorted(heads)[int(HEADS * 0.9)] * 1000, 2),
            }
    return out


def verify(side: Side) -> Any:
    """verify_log in this process (executor="serial"): one process on both sides."""
    if side.state is None:
        return verify_log(side.root, executor="serial")
    return verify_log(side.store, state_dir=side.state, executor="serial")


def _ms(samples: list[float]) -> dict[str, object]:
    return {
        "ms_median": round(statistics.median(samples) * 1000, 2),
        "ms_samples": [round(s * 1000, 2) for s in samples],
    }


def _entry_line(i: int) -> bytes:
    """A line the size and shape of a manifest entry (~550 bytes)."""
    seq = i * SEGMENT_EVENTS
    entry = {
        "v": 1,
        "index": i,
        "stream_id": STREAMS["BTCUSDT"],
        "segment": f"{seq + 1:020d}-{seq + SEGMENT_EVENTS:020d}.parquet",
        "seq_from": seq + 1,
        "seq_to": seq + SEGMENT_EVENTS,
        "rows": SEGMENT_EVENTS,
        "ts_exchange_min": 1_723_161_600_000 + i * 12_500,
        "ts_exchange_max": 1_723_161_600_000 + i * 12_500 + 12_499,
        "ts_ingest_min": 1_723_161_600_003 + i * 12_500,
        "ts_ingest_max": 1_723_161_600_003 + i * 12_500 + 12_499,
        "payload_bytes": 4_612_000,
        "file_bytes": 1_180_000,
        "file_sha256": f"{i:064x}",
        "payload_digest": f"{i + 1:064x}",
        "prev": f"{i + 2:064x}",
    }
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


# -- checks, ratios, the table ---------------------------------------------------------

SECONDS_KEYS = ("write", "write_no_fsync", "read", "read_one_column", "verify", "canonicalize")


def ratios(local: dict[str, Any], s3: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key in SECONDS_KEYS:
        out[key] = round(s3[key]["seconds_median"] / local[key]["seconds_median"], 2)
    for key in MS_KEYS:
        out[key] = round(s3[key]["ms_median"] / local[key]["ms_median"], 1)
    return out


def checks(s3: dict[str, Any], segments: int, segment_bytes: int) -> dict[str, object]:
    """What the request counts say about the S3 paths; each must hold."""
    wr = s3["write"]["s3_requests_last_run"]["by_operation"]
    rd = s3["read"]["s3_requests_last_run"]
    one = s3["read_one_column"]["s3_requests_last_run"]
    ver = s3["verify"]["s3_requests_last_run"]
    can = s3["canonicalize"]["s3_requests_last_run"]
    ca = s3["chain_append_200"]["s3_requests_last_run"]["by_operation"]
    cr = s3["chain_read_200"]["s3_requests_last_run"]["by_operation"]
    rd_ops = rd["by_operation"]
    result = {
        # marker + one PUT per segment + one per manifest entry
        "write_puts_are_marker_segments_entries": wr.get("PutObject") == 1 + 2 * segments,
        # segments are read by ranged GETs only; full GETs are the manifest entries
        "read_segments_by_ranged_gets": rd_ops.get("GetObject(range)", 0) >= segments
        and rd_ops.get("GetObject", 0) == segments,
        "read_ranged_gets_per_segment": round(rd_ops.get("GetObject(range)", 0) / segments, 2),
        # reading all columns fetches about the segment bytes, not twice them
        "read_bytes_over_segment_bytes": round(rd["get_bytes"] / segment_bytes, 3),
        # one column fetches a small part of them
        "read_one_column_bytes_over_segment_bytes": round(one["get_bytes"] / segment_bytes, 3),
        # verify reads each segment whole: for its SHA-256, and as Parquet (1x-2x)
        "verify_bytes_over_segment_bytes": round(ver["get_bytes"] / segment_bytes, 3),
        # canonicalize downloads each trade segment once (SegmentFiles) for DuckDB
        "canonicalize_bytes_over_segment_bytes": round(can["get_bytes"] / segment_bytes, 3),
        # a chain append is HEAD of the previous entry + one conditional PUT
        "chain_append_requests_per_entry": round(sum(ca.values()) / CHAIN_ENTRIES, 2),
        # a chain read is one LIST page per 1,000 entries + one GET per entry
        "chain_read_requests": cr,
    }
    ok = (
        result["write_puts_are_marker_segments_entries"]
        and result["read_segments_by_ranged_gets"]
        and 0.9 <= result["read_bytes_over_segment_bytes"] <= 1.2
        and result["read_one_column_bytes_over_segment_bytes"] < 0.5
        and 0.9 <= result["verify_bytes_over_segment_bytes"] <= 2.4
        and 0.9 <= result["canonicalize_bytes_over_segment_bytes"] <= 1.3
        and result["chain_append_requests_per_entry"] <= 2.0
        and cr.get("GetObject") == CHAIN_ENTRIES
    )
    result["ok"] = bool(ok)
    return result


def table(local: dict[str, Any], s3: dict[str, Any], ratio: dict[str, float]) -> list[str]:
    rows = [("measure", "local", "S3 (moto)", "S3/local")]
    for key in SECONDS_KEYS:
        lo, hi = local[key], s3[key]
        rows.append(
            (
                f"{key} (s, events/s)",
                f"{lo['seconds_median']:.3f}  {lo['events_per_s']:>10,}",
                f"{hi['seconds_median']:.3f}  {hi['events_per_s']:>10,}",
                f"x{ratio[key]}",
            )
        )
    rows.append(
        (
            "read (stored MB/s)",
            f"{local['read']['stored_mb_per_s']}",
            f"{s3['read']['stored_mb_per_s']}",
            "",
        )
    )
    for key in MS_KEYS:
        rows.append(
            (
                f"{key} (ms)",
                f"{local[key]['ms_median']:.2f}",
                f"{s3[key]['ms_median']:.2f}",
                f"x{ratio[key]}",
            )
        )
    rows.append(("one HEAD request (ms)", "-", f"{s3['head_object']['ms_median']:.2f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def notes(result: dict[str, Any]) -> list[str]:
    s3, events = result["s3"], result["events"]
    floor = s3["head_object"]["ms_median"]
    append = s3["chain_append_200"]
    per_request = append["ms_median"] / append["s3_requests_last_run"]["requests"]
    return [
        "moto is Python on loopback: it parses every request and keeps every object in "
        "memory. So the S3 figures measure the protocol and client overhead (the number "
        "of requests, HTTP and XML serialization, request signing, boto3's per-call cost, "
        "a Python server's per-request cost), not the network, nor a real S3's "
        "per-request latency or bandwidth. Against a real S3 each request also costs its "
        "round trip: multiply the request counts in s3_requests_last_run by that latency.",
        f"The per-request floor here is {floor} ms (a HEAD of a small object, median of "
        f"{HEADS}); a chain_append cost {per_request:.1f} ms a request (a HEAD of the "
        "previous entry + one conditional PUT per entry, one at a time): the chain "
        "figures are request-bound, and chain_read's 200 GETs run 8 at a time.",
        "moto's ThreadedMotoServer, started as tests/storage start it, ran in a child "
        "process so that it does not share the measured process's GIL; on this 2-core box "
        "it still competes with the bench for the cores.",
        f"The data is moderate because moto holds it in memory: {events:,} events in "
        f"{result['segments']} segments of {SEGMENT_EVENTS:,} ({result['segment_bytes'] / 1e6:.1f}"
        f" MB stored, {result['payload_bytes'] / 1e6:.0f} MB of payloads); each write "
        "run's bucket was emptied and deleted once the next run had written its own.",
        "Journals stay on local disk with fsync in both cases, so the write figures differ "
        "only in where the sealed segments and manifest entries go: locally a temp file, "
        "fsync, hard link, directory fsync and a manifest line with fsync; on S3 a staging "
        "file (not fsynced: the upload is what makes it durable) and one conditional PUT "
        "per segment and per manifest entry. write_no_fsync (fsync off on both sides) "
        "isolates the request overhead from the fsyncs.",
        "The local reads come from the page cache (the log was just written), so they are "
        "memory-bound figures, not a cold disk's. read_one_column shows the ranged reads: "
        "through S3 it fetched a small fraction of the stored bytes (checks), but its time "
        "is the per-request cost (manifest GETs, a HEAD and two ranged GETs per segment).",
        'verify ran with executor="serial" on both sides (verify_log\'s keyword; its '
        "default): every stream in this one process, with the caller's store, so the ratio "
        "is the storage overhead only (no worker start-up, no parallelism on either side) "
        "and every S3 request it made was counted.",
        'canonicalize (1m bars of both symbols, engine sql, executor="serial": the build '
        "task runs in this process) opened the log read-only (locally the data directory; "
        "on S3 the store with no state dir: a reader gets a temp one) and published "
        "revision 1 into the same store's bars/ tree; the time includes the open. Bars "
        "are immutable revisions: with the bars present a second build changes and writes "
        "nothing, so the bars tree was deleted after each sample (not timed) and every "
        "sample built and published the initial revision (asserted); rebuild=True, "
        "which would publish revision N+1 each time, was not used. "
        "On S3 the task downloads its stream's segments into a temp directory "
        "(storage/segment.py SegmentFiles, hashing on the way) before DuckDB reads them; "
        "locally DuckDB reads the segment files in place. Its S3 requests include the "
        "task's own store (task_store), hooked as well. events/s counts the log's trade "
        "events (all of them).",
        "This is a shared 2-core box: other engineers ran test suites during the "
        "measurement (load_average_1m_before_after). The two sides alternate within each "
        "run so both see the same background load, but whole runs of this bench differed: "
        "during its development the local fsync-bound figures (put_new_1mb, "
        "chain_append_200) moved by up to 8x with the others' disk load, the rest by up "
        "to 2x. Read the ratios of the fsync-bound figures as the least stable. The code "
        "measured is the working tree ('code' lists its uncommitted package files).",
    ]


def _code_version() -> dict[str, object]:
    """The commit measured, and the package files that differed from it (shared checkout)."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "buff_dataplane")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": dirty.splitlines()}


def main() -> None:
    started = time.time()
    data = make_data()
    events = sum(len(cols[0]) for cols in data.values())
    payload_bytes = sum(len(p) for cols in data.values() for p in cols[0])
    work = WORK / "objstore"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()
    try:
        with moto_server() as (endpoint, proc), aws_env(endpoint, work):
            sides = [Side("local", work), Side("s3", work, endpoint)]
            try:
                out = measure(sides, data, events)
            finally:
                for side in sides:
                    side.close()
            moto_rss = _peak_rss_mb(proc.pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local, s3 = out["local"], out["s3"]
    segments = local["log"]["segments"]
    segment_bytes = local["log"]["segment_bytes"]
    assert s3["log"] == local["log"], (s3["log"], local["log"])  # byte for byte the same
    ratio = ratios(local, s3)
    check = checks(s3, segments, segment_bytes)
    result = {
        "events": events,
        "streams": len(STREAMS),
        "segments": segments,
        "segment_bytes": segment_bytes,
        "payload_bytes": payload_bytes,
        "avg_payload_bytes": round(payload_bytes / events, 1),
        "config": CONFIG.to_dict(),
        "batch_events": BATCH,
        "runs": RUNS,
        "method": "same events written to a local data directory and to S3 "
        "(open_log(store, state_dir=...)), a fresh store per write run; read = open_log "
        "read-only + reader.scan over every stream; verify = verify_log(executor='serial'); "
        "canonicalize = open_log(readonly) + canonicalize(1m, executor='serial') with the "
        "bars deleted between samples (each publishes revision 1); put_new / "
        "chain_append / chain_read on the same stores (LocalStore with fsync); median of 3",
        "s3_server": "moto (ThreadedMotoServer, 127.0.0.1) in a child process",
        "moto_peak_rss_mb": moto_rss,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "code": _code_version(),
        "bench_peak_rss_mb": round(peak_rss_mb(), 1),
        "local": local,
        "s3": s3,
        "ratio_s3_over_local": ratio,
        "checks": check,
    }
    result["notes"] = notes(result)
    path = write_result("objstore", result)
    print(f"objstore bench ({time.time() - started:.0f}s) -> {path}")
    print(f"  {events:,} events, {segments} segments, {segment_bytes / 1e6:.1f} MB stored")
    for line in table(local, s3, ratio):
        print(line)
    print(f"  checks: {check}")
    if not check["ok"]:
        raise SystemExit("objstore bench: an S3 request-count check failed (see checks)")


if __name__ == "__main__":
    main()
