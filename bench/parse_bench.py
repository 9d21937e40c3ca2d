"""Parse throughput per venue, on the real recorded messages of ../shared/fixtures/real.

Each venue's messages are read the way ``buff import`` reads them (capture_files framing,
connections of another product left out), then ``parser.parse(payload)`` is timed over
all of them, in file order, looped to >= ~1 s per round, best of 3. ``mix`` is that run;
``trade_only`` times the same way the messages the parser reads as trades, alone;
``mix_within_default_payload_limit`` (only where some message is larger than the default
``max_payload_bytes``, Coinbase level2 snapshots of several MB) the mix without those.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.common import write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Parser
from buff_dataplane.feeds.registry import parser_for, parser_venues
from buff_dataplane.pipeline.capture_files import CaptureLine, read_capture
from buff_dataplane.pipeline.importer import check_file

# venue -> (file under the fixtures directory, capture format). BYBIT.ws.26.0 is not
# listed: it was recorded from the pre-v5 inverse API, which is no bybit-linear traffic.
SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "binance-usdm": (
        ("hftbacktest/usdm/btcusdt_20240808.gz", "hftbacktest"),
        ("cryptofeed/BINANCE_FUTURES.ws.1.0", "cryptofeed"),
    ),
    "binance-spot": (
        ("hftbacktest/spot/btcusdt_20240808.gz", "hftbacktest"),
        ("cryptofeed/BINANCE.ws.1.0", "cryptofeed"),
    ),
    "bybit-linear": (("cryptofeed/v3/BYBIT.jsonl.zst", "cryptofeed-v3"),),
    "okx-swap": (("cryptofeed/OKX.ws.1.0", "cryptofeed"),),
    "coinbase": (
        ("cryptofeed/COINBASE.ws.28.0", "cryptofeed"),
        ("cryptofeed/v3/COINBASE.jsonl.zst", "cryptofeed-v3"),
    ),
    "kraken": (("cryptofeed/KRAKEN.ws.50.0", "cryptofeed"),),
}
# Coinbase Advanced Trade level2 snapshots run to 5 MB: read every real message, whatever
# its size (64 MiB is the largest max_payload_bytes the log config allows).
MAX_PAYLOAD_BYTES = 64 << 20
MIN_ROUND_S = 1.0
CHUNK_S = 0.02
ROUNDS = 3


def fixtures_dir() -> Path:
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "real"
    return Path(os.environ.get("BUFF_REAL_FIXTURES", default)).resolve()


def venue_messages(
    venue: str, root: Path
) -> tuple[list[bytes], list[dict[str, object]], list[str]]:
    """The received payloads of ``venue`` in its files, as the importer reads them."""
    payloads: list[bytes] = []
    files: list[dict[str, object]] = []
    missing: list[str] = []
    for rel, fmt in SOURCES[venue]:
        path = root / rel
        if not path.is_file():
            missing.append(rel)
            continue
        plan = check_file(path, fmt, venue, MAX_PAYLOAD_BYTES)
        n = other = 0
        for item in read_capture(path, fmt, max_payload_bytes=MAX_PAYLOAD_BYTES):
            if not isinstance(item, CaptureLine):
                continue
            if item.conn in plan.other_endpoints:
                other += 1
                continue
            payloads.append(item.payload)
            n += 1
        files.append(
            {
                "file": rel,
                "format": fmt,
                "messages": n,
                "other_endpoint_messages_left_out": other,
            }
        )
    return payloads, files, missing


def classify(parser: Parser, payloads: list[bytes]) -> tuple[list[bytes], int, Counter[str]]:
    """One untimed pass: the trade messages, the trades they hold, refusals by reason."""
    trade_msgs: list[bytes] = []
    trades = 0
    refused: Counter[str] = Counter()
    for payload in payloads:
        try:
            parsed = parser.parse(payload)
        except PayloadRejected as exc:
            refused[exc.reason] += 1
            continue
        n = len(parsed.trades)
        if n:
            trade_msgs.append(payload)
            trades += n
    return trade_msgs, trades, refused


def _pass(parse: Callable[[bytes], Parsed], payloads: list[bytes], reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        for payload in payloads:
            try:  # noqa: SIM105 (contextlib.suppress would add its cost to every parse)
                parse(payload)
            except PayloadRejected:
                pass
    return time.perf_counter() - start


def time_parse(parser: Parser, payloads: list[bytes]) -> tuple[float, dict[str, object]]:
    """Best seconds per pass over ``payloads`` of ROUNDS rounds, each >= MIN_ROUND_S."""
    parse = parser.parse
    chunk, took = 1, _pass(parse, payloads, 1)  # also warms up
    while took < CHUNK_S:  # passes per clock check, so tiny sets do not time the clock
        chunk *= 2 if took * 10 > CHUNK_S else 10
        took = _pass(parse, payloads, chunk)
    per_pass: list[float] = []
    seconds: list[float] = []
    counts: list[int] = []
    for _ in range(ROUNDS):
        passes, elapsed = 0, 0.0
        while elapsed < MIN_ROUND_S:
            elapsed += _pass(parse, payloads, chunk)
            passes += chunk
        per_pass.append(elapsed / passes)
        seconds.append(round(elapsed, 3))
        counts.append(passes)
    return min(per_pass), {"round_passes": counts, "round_seconds": seconds}


def _rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def bench_venue(venue: str, root: Path) -> dict[str, object]:
    payloads, files, missing = venue_messages(venue, root)
    if not payloads:
        return {"skipped": f"no recorded messages found under {root}", "missing_files": missing}
    parser = parser_for(venue)
    trade_msgs, trades, refused = classify(parser, payloads)
    n, nbytes = len(payloads), sum(map(len, payloads))

    per_pass, mix = time_parse(parser, payloads)
    result: dict[str, object] = {
        "files": files,
        "messages": n,
        "distinct_messages": len(set(payloads)),
        "bytes": nbytes,
        "max_message_bytes": max(map(len, payloads)),
        "trade_messages": len(trade_msgs),
        "trades": trades,
        "refused": sum(refused.values()),
        "refused_by_reason": dict(sorted(refused.items())),
        "mix": {
            **mix,
            "messages_per_s": _rate(n, per_pass),
            "trade_messages_per_s": _rate(len(trade_msgs), per_pass),
            "trades_per_s": _rate(trades, per_pass),
            "mb_per_s": round(nbytes / per_pass / 1e6, 1),
            "us_per_message": round(per_pass / n * 1e6, 2),
        },
    }
    if missing:
        result["missing_files"] = missing
    limit = LogConfig().max_payload_bytes
    within = [p for p in payloads if len(p) <= limit]
    if len(within) < n:  # a few huge snapshots can own the mix: show it without them
        w_pass, w_info = time_parse(parser, within)
        result["mix_within_default_payload_limit"] = {
            "max_payload_bytes": limit,
            "messages_left_out": n - len(within),
            **w_info,
            "messages_per_s": _rate(len(within), w_pass),
            "us_per_message": round(w_pass / len(within) * 1e6, 2),
        }
    if trade_msgs:
        t_pass, only = time_parse(parser, trade_msgs)
        result["trade_only"] = {
            **only,
            "trade_messages_per_s": _rate(len(trade_msgs), t_pass),
            "trades_per_s": _rate(trades, t_pass),
            "us_per_message": round(t_pass / len(trade_msgs) * 1e6, 2),
        }
    else:
        result["trade_only"] = "no trade messages in these recordings"
    return result


def run(venues: tuple[str, ...] | None = None) -> dict[str, object]:
    root = fixtures_dir()
    venues = venues or parser_venues()
    return {
        "fixtures": str(root),
        "method": (
            f"parser.parse(payload) over the venue's real messages in file order, looped to "
            f">= {MIN_ROUND_S:g} s per round, best of {ROUNDS} rounds (time.perf_counter); "
            "PayloadRejected caught and counted in an untimed pass; mix = all messages, "
            "trade_only = the messages holding trades, timed alone"
        ),
        "venues": {venue: bench_venue(venue, root) for venue in venues},
    }


def main() -> None:
    started = time.time()
    root = fixtures_dir()
    if not root.is_dir():
        print(f"parse bench skipped: {root} not found (set BUFF_REAL_FIXTURES)")
        return
    result = run()
    path = write_result("parse", result)
    print(f"parse bench ({time.time() - started:.0f}s) -> {path}")
    venues = result["venues"]
    assert isinstance(venues, dict)
    for venue, r in venues.items():
        if "skipped" in r:
            print(f"  {venue}: {r['skipped']}")
            continue
        mix = r["mix"]
        print(
            f"  {venue}: {mix['messages_per_s']:,} msg/s, {mix['trades_per_s']:,} trades/s "
            f"({r['messages']:,} messages, {r['trade_messages']:,} trade messages, "
            f"{r['trades']:,} trades, {r['refused']:,} refused)"
        )


if __name__ == "__main__":
    main()
