"""Generators shared by the bar engine tests: trade sets, their payloads, raw logs of them.

A :class:`Scenario` is a trade stream as a capture could have logged it: every trade once,
some again (the same content, maybe in another wire shape), some again with other content
(a conflict), in a shuffled ingest order, with ingest delays that make some trades late,
some from a REST back-fill. :func:`write_log` writes it into a fresh raw log with small
segments, for ``build_bars_ref`` and ``build_bars_sql`` to read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.decimals import parse_decimal
from buff_dataplane.storage.log import open_log

VENUE_SYMBOL = "BTCUSDT"
SYMBOLS = {"binance-usdm": "BTC-USDT-PERP", "binance-spot": "BTC-USDT"}
T0 = 1_723_161_600_000  # 2024-08-09 00:00 UTC

# Wire shapes. "agg" trades carry first/last raw ids, "trade" ones do not.
AGG_FAST = ("usdm_agg", "usdm_agg_bare", "spot_agg", "spot_agg_bare")
AGG_ODD = ("agg_spaced", "agg_extra_field", "agg_upper_stream", "agg_leading_zero")
REST = ("rest_agg", "rest_agg_m")
TRADE = ("usdm_trade", "usdm_trade_bare", "spot_trade")


@dataclass(frozen=True)
class GenTrade:
    tid: int
    price: str  # plain decimal text, as the venue sends it
    qty: str
    buy: bool  # the taker bought (Binance m = false)
    ts: int
    first: int | None  # raw trade ids an aggTrade covers; None for a `trade` message
    last: int | None


@dataclass(frozen=True)
class GenEvent:
    trade: GenTrade
    shape: str
    ingest_ms: int
    source: str = "ws"


@dataclass(frozen=True)
class Scenario:
    venue: str
    events: tuple[GenEvent, ...]  # in ingest order
    segment_max_events: int


def _m(t: GenTrade) -> str:
    return "false" if t.buy else "true"


def payload(t: GenTrade, shape: str) -> bytes:
    """The exact message text of ``t`` in ``shape``."""
    s, m = VENUE_SYMBOL, _m(t)
    if shape in TRADE:
        assert t.first is None
        if shape == "spot_trade":
            body = (
                f'{{"e":"trade","E":{t.ts + 1},"s":"{s}","t":{t.tid},"p":"{t.price}",'
                f'"q":"{t.qty}","T":{t.ts},"m":{m},"M":true}}'
            )
        else:
            body = (
                f'{{"e":"trade","E":{t.ts},"T":{t.ts},"s":"{s}","t":{t.tid},"p":"{t.price}",'
                f'"q":"{t.qty}","X":"MARKET","m":{m}}}'
            )
        if shape.endswith("_bare"):
            return body.encode()
        return f'{{"stream":"{s.lower()}@trade","data":{body}}}'.encode()
    assert t.first is not None and t.last is not None
    ids = f'"f":{t.first},"l":{t.last}'
    if shape in REST or shape == "rest_agg_unknown_field":
        extra = {"rest_agg_m": ',"M":true', "rest_agg_unknown_field": ',"x":1'}.get(shape, "")
        return (
            f'{{"a":{t.tid},"p":"{t.price}","q":"{t.qty}",{ids},"T":{t.ts},"m":{m}{extra}}}'
        ).encode()
    price = "0" + t.price if shape == "agg_leading_zero" else t.price
    if shape.startswith("spot_agg"):
        body = (
            f'{{"e":"aggTrade","E":{t.ts + 2},"s":"{s}","a":{t.tid},"p":"{price}",'
            f'"q":"{t.qty}",{ids},"T":{t.ts},"m":{m},"M":true}}'
        )
    else:
        body = (
            f'{{"e":"aggTrade","E":{t.ts + 2},"a":{t.tid},"s":"{s}","p":"{price}",'
            f'"q":"{t.qty}",{ids},"T":{t.ts},"m":{m}}}'
        )
        if shape == "agg_spaced":
            body = body.replace('":', '": ').replace(",", ", ")
        elif shape == "agg_extra_field":
            body = body[:-1] + ',"nq":"1.5","st":0}'
    if shape.endswith("_bare"):
        return body.encode()
    prefix = s if shape == "agg_upper_stream" else s.lower()
    return f'{{"stream":"{prefix}@aggTrade","data":{body}}}'.encode()


# --- hypothesis strategies ----------------------------------------------------------------


@st.composite
def decimal_text(draw: st.DrawFn, *, max_units: int = 10**7, max_scale: int = 8) -> str:
    units = draw(st.integers(1, max_units))
    scale = draw(st.integers(0, max_scale))
    text = str(units).rjust(scale + 1, "0")
    return text if scale == 0 else f"{text[:-scale]}.{text[-scale:]}"


_STEPS = (0, 0, 1, 250, 999, 1_000, 1_001, 30_000, 59_999, 61_000, 299_999, 300_001, 3_700_000)
_DELAYS = (0, 3, 150, 999, 1_500, 61_000, 400_000, 5_000_000)


@st.composite
def scenarios(
    draw: st.DrawFn, *, rest: bool = True, odd: bool = True, max_trades: int = 24
) -> Scenario:
    """Trade streams with duplicates, conflicts, equal times, empty buckets, id jumps,
    late and out-of-order ingest, back-fill rows and several segments."""
    venue = draw(st.sampled_from(sorted(SYMBOLS)))
    n = draw(st.integers(0, max_trades))
    ts = T0 + draw(st.integers(0, 3)) * 21_600_000 + draw(st.integers(0, 59_999))
    tid = draw(st.integers(0, 10**9))
    raw = draw(st.integers(0, 10**9))
    trades: list[GenTrade] = []
    for _ in range(n):
        ts += draw(st.sampled_from(_STEPS))
        tid += draw(st.sampled_from((1, 1, 1, 1, 2, 7)))
        kind_trade = draw(st.integers(0, 5)) == 0
        count = draw(st.sampled_from((1, 1, 2, 5)))
        trades.append(
            GenTrade(
                tid=tid,
                price=draw(decimal_text()),
                qty=draw(decimal_text(max_units=10**6)),
                buy=draw(st.booleans()),
                ts=ts,
                first=None if kind_trade else raw,
                last=None if kind_trade else raw + count - 1,
            )
        )
        raw += count
    agg_shapes = AGG_FAST + (AGG_ODD if odd else ())
    events: list[GenEvent] = []

    def emit(t: GenTrade) -> None:
        if t.first is None:
            shape = draw(st.sampled_from(TRADE))
        elif rest and draw(st.integers(0, 3)) == 0:
            shape = draw(st.sampled_from(REST))
        else:
            shape = draw(st.sampled_from(agg_shapes))
        backfill = shape in REST or draw(st.integers(0, 6)) == 0
        events.append(
            GenEvent(
                trade=t,
                shape=shape,
                ingest_ms=t.ts + draw(st.sampled_from(_DELAYS)),
                source="rest_backfill" if backfill else "ws",
            )
        )

    for t in trades:
        emit(t)
        if draw(st.integers(0, 5)) == 0:  # the same trade again
            emit(t)
        if draw(st.integers(0, 9)) == 0:  # the same id with other content
            changed = draw(st.sampled_from(("price", "qty", "buy", "ts", "ids")))
            if changed == "price":
                other = dataclasses.replace(
                    t, price=t.price + "1" if "." in t.price else t.price + ".5"
                )
            elif changed == "qty":
                other = dataclasses.replace(t, qty=str(int(parse_decimal(t.qty) * 2 + 1)))
            elif changed == "buy":
                other = dataclasses.replace(t, buy=not t.buy)
            elif changed == "ts":
                other = dataclasses.replace(t, ts=t.ts + draw(st.sampled_from((1, 61_000))))
            elif t.first is not None and t.last is not None:
                other = dataclasses.replace(t, last=t.last + 1)
            else:
                other = dataclasses.replace(t, buy=not t.buy)
            emit(other)
    order = draw(st.permutations(range(len(events)))) if draw(st.booleans()) else range(len(events))
    return Scenario(
        venue=venue,
        events=tuple(events[i] for i in order),
        segment_max_events=draw(st.integers(1, 6)),
    )


# --- logs and the reference ---------------------------------------------------------------


def write_log(root: Path, scenario: Scenario) -> list[Path]:
    """Write ``scenario`` into a new raw log under ``root``; return its segment files."""
    stream = f"{scenario.venue}/trade/{SYMBOLS[scenario.venue]}"
    cfg = LogConfig(segment_max_events=scenario.segment_max_events, fsync=False)
    with open_log(root, cfg) as log:
        writer = log.writer(stream)
        run: list[GenEvent] = []
        for ev in [*scenario.events, None]:
            if run and (ev is None or ev.source != run[0].source):
                writer.append_batch(
                    [payload(e.trade, e.shape) for e in run],
                    [e.trade.ts for e in run],
                    [e.ingest_ms for e in run],
                    source=run[0].source,
                )
                run = []
            if ev is not None:
                run.append(ev)
    return segments(root)


def segments(root: Path) -> list[Path]:
    return sorted(root.glob("log/*/*/*/segments/*.parquet"))
