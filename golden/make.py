"""Golden captures, made deterministically from the simulator's seeded tape.

Each case is a small NDJSON capture (``{"recv_ms": ..., "raw": ...}`` per line, in
receive order) holding the situations the log and the bars must get right: two symbols,
a UTC day boundary, empty minutes, an exact duplicate, a conflicting duplicate,
out-of-order exchange times, a late event, and a hole repaired by REST back-fill
(``*.rest.ndjson``: aggTrades items appended with ``source = rest_backfill``).
``python -m golden.make`` rewrites them; ``golden.check`` regenerates them in memory and
fails if a committed file differs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import msgspec

from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.sim.binance_usdm import agg_trade_message, rest_agg_trade_item
from buff_dataplane.sim.tape import TapeSpec, generate

HERE = Path(__file__).resolve().parent
CAPTURES = HERE / "captures"
DAY = 1_723_161_600_000  # 2024-08-09T00:00:00Z


def _usdm_two_symbols_day_boundary() -> list[tuple[int, bytes]]:
    start = DAY - 3 * 60_000
    btc = generate(
        TapeSpec("BTCUSDT", start, 6 * 60_000, seed=11, rate_per_s=2.0, quiet_minutes=(1,))
    )
    eth = generate(
        TapeSpec(
            "ETHUSDT",
            start,
            6 * 60_000,
            seed=12,
            rate_per_s=1.5,
            start_price_ticks=265_012,
            quiet_minutes=(4,),
            first_agg_id=1_900_000_000,
            first_trade_id=3_100_000_000,
        )
    )
    lines: list[tuple[int, bytes]] = []
    for i, t in enumerate(btc + eth):
        lines.append((t.ts_ms + 5 + i % 7, agg_trade_message(t)))
    # An exact duplicate: the venue re-sends a message after a reconnect.
    dup = btc[10]
    lines.append((dup.ts_ms + 900, agg_trade_message(dup)))
    # A conflicting duplicate: the same aggregate id with a different quantity.
    conflict = replace(eth[20], qty="9.999")
    lines.append((conflict.ts_ms + 950, agg_trade_message(conflict)))
    # Out-of-order exchange times: two trades received in swapped order.
    a, b = btc[30], btc[31]
    lines = [(r, m) for r, m in lines if m not in (agg_trade_message(a), agg_trade_message(b))]
    lines.append((b.ts_ms + 8, agg_trade_message(a)))
    lines.append((b.ts_ms + 8, agg_trade_message(b)))
    # A late event: received 8 s after its trade time, past the bucket's seal.
    late = btc[-5]
    lines = [(r, m) for r, m in lines if m != agg_trade_message(late)]
    lines.append((late.ts_ms + 8_000, agg_trade_message(late)))
    lines.sort(key=lambda x: x[0])  # stable: equal receive times keep insertion order
    return lines


def _usdm_backfill() -> list[tuple[int, bytes]]:
    """A capture with a hole: 40 trades missed by the WebSocket (a reconnect)."""
    start = DAY + 3_600_000
    trades = generate(TapeSpec("BTCUSDT", start, 4 * 60_000, seed=21, rate_per_s=3.0))
    missed = {t.agg_id for t in trades[400:440]}
    return [(t.ts_ms + 4, agg_trade_message(t)) for t in trades if t.agg_id not in missed]


def _usdm_backfill_rest() -> list[tuple[int, bytes]]:
    """What a REST back-fill returns for that hole: aggTrades items, received later."""
    start = DAY + 3_600_000
    trades = generate(TapeSpec("BTCUSDT", start, 4 * 60_000, seed=21, rate_per_s=3.0))
    fetched_at = trades[-1].ts_ms + 30_000
    return [(fetched_at, rest_agg_trade_item(t)) for t in trades[400:440]]


# name -> (venue, capture lines, back-filled lines (symbol, lines) or None)
CASES: dict[str, tuple[str, Callable[[], list[tuple[int, bytes]]]]] = {
    "usdm_two_symbols_day_boundary": ("binance-usdm", _usdm_two_symbols_day_boundary),
    "usdm_backfill": ("binance-usdm", _usdm_backfill),
}
# Back-filled events appended after a case's capture: case -> (symbol, lines).
BACKFILLS: dict[str, tuple[str, Callable[[], list[tuple[int, bytes]]]]] = {
    "usdm_backfill": ("BTC-USDT-PERP", _usdm_backfill_rest),
}


def _two_symbols_ledger() -> list[Gap]:
    """Facts a back-fill could not repair: a window given up on ETH, a WS/REST conflict
    on one BTC trade. Bars over them must be GAP_UNRESOLVED / CONFLICT."""
    btc = generate(
        TapeSpec(
            "BTCUSDT", DAY - 3 * 60_000, 6 * 60_000, seed=11, rate_per_s=2.0, quiet_minutes=(1,)
        )
    )
    given_up = new_gap(
        "binance-usdm/trade/ETH-USDT-PERP",
        "downtime",
        id_from=None,
        id_to=None,
        ts_from_ms=DAY + 65_000,
        ts_to_ms=DAY + 80_000,
        detected_at_ms=DAY + 300_000,
    )
    t = btc[40]
    conflict = new_gap(
        "binance-usdm/trade/BTC-USDT-PERP",
        "conflict",
        id_from=t.agg_id,
        id_to=t.agg_id,
        ts_from_ms=t.ts_ms,
        ts_to_ms=t.ts_ms,
        detected_at_ms=DAY + 300_000,
    )
    return [
        msgspec.structs.replace(given_up, status="UNRESOLVED", reason="golden: attempts spent"),
        msgspec.structs.replace(conflict, status="UNRESOLVED", reason="golden: ws/rest differ"),
    ]


# Gap ledger facts recorded after a case's other stages (a stage of their own).
LEDGERS: dict[str, Callable[[], list[Gap]]] = {
    "usdm_two_symbols_day_boundary": _two_symbols_ledger,
}


def render(name: str) -> bytes:
    _, build = CASES[name]
    return _ndjson(build())


def render_backfill(name: str) -> bytes:
    _, build = BACKFILLS[name]
    return _ndjson(build())


def _ndjson(lines: list[tuple[int, bytes]]) -> bytes:
    out = [
        json.dumps({"recv_ms": recv, "raw": raw.decode()}, separators=(",", ":"), sort_keys=True)
        for recv, raw in lines
    ]
    return ("\n".join(out) + "\n").encode()


def capture_path(name: str) -> Path:
    return CAPTURES / f"{name}.ndjson"


def backfill_path(name: str) -> Path:
    return CAPTURES / f"{name}.rest.ndjson"


def main() -> None:
    CAPTURES.mkdir(exist_ok=True)
    for name in sorted(CASES):
        capture_path(name).write_bytes(render(name))
        print(f"wrote {capture_path(name).relative_to(HERE.parent)}")
    for name in sorted(BACKFILLS):
        backfill_path(name).write_bytes(render_backfill(name))
        print(f"wrote {backfill_path(name).relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
    sys.exit(0)
