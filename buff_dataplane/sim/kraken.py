"""Kraken spot message encodings of tape trades: WebSocket v2 and REST (exchanges.md 6).

A tape trade's ``agg_id`` is Kraken's ``trade_id`` (a sequence per book: contiguous), its
symbol the v2 name (``BTC/USD``). Kraken times carry microseconds; the tape's are whole
milliseconds, so each trade gets a deterministic microsecond part, the same in the v2
``timestamp`` and in the REST row's time::

    {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",
     "price":61800.3,"qty":0.125,"ord_type":"limit","trade_id":2353245000,
     "timestamp":"2026-01-01T00:00:00.123457Z"}]}
    ["61800.30000","0.12500000",1767225600.123457,"b","l","",2353245000]

v2 money is a JSON number written as Kraken writes it (shortest, ``740.0`` keeps one
digit after the point); REST money is text with 5 (price) and 8 (volume) decimals and the
REST time a JSON number of epoch seconds, the double's shortest text, as Kraken sends it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal

from buff_dataplane.sim.tape import TapeTrade

_UTC = dt.UTC


def micros(t: TapeTrade) -> int:
    """The trade's microseconds within its millisecond (deterministic, 0..999)."""
    return (t.agg_id * 7919) % 1000


def time_ns(t: TapeTrade) -> int:
    return t.ts_ms * 1_000_000 + micros(t) * 1000


def rfc3339(ms: int, extra_us: int = 0) -> str:
    """``2026-01-01T00:00:00.123457Z`` for epoch ``ms`` plus ``extra_us`` microseconds."""
    stamp = dt.datetime.fromtimestamp(ms // 1000, _UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}{extra_us:03d}Z"


def number(text: str) -> str:
    """Decimal text as Kraken v2 writes the JSON number: ``61800.30`` -> ``61800.3``."""
    if "." not in text:
        return text + ".0"
    whole, frac = text.split(".")
    frac = frac.rstrip("0") or "0"
    return f"{whole}.{frac}"


def fixed(text: str, places: int) -> str:
    """Decimal text with exactly ``places`` decimals (REST): ``61800.3`` -> ``61800.30000``."""
    return str(Decimal(text).quantize(Decimal(1).scaleb(-places)))


def trade_item(t: TapeTrade) -> str:
    side = "sell" if t.buyer_maker else "buy"  # the taker's side
    ord_type = "market" if t.agg_id % 3 == 0 else "limit"
    return (
        f'{{"symbol":"{t.symbol}","side":"{side}","price":{number(t.price)},'
        f'"qty":{number(t.qty)},"ord_type":"{ord_type}","trade_id":{t.agg_id},'
        f'"timestamp":"{rfc3339(t.ts_ms, micros(t))}"}}'
    )


def trade_message(trades: Iterable[TapeTrade], kind: str = "update") -> str:
    """A v2 ``trade`` push of ``trades`` (``kind``: ``update`` or ``snapshot``)."""
    data = ",".join(trade_item(t) for t in trades)
    return f'{{"channel":"trade","type":"{kind}","data":[{data}]}}'


def ticker_message(t: TapeTrade, kind: str = "update") -> str:
    """A v2 ``ticker`` push around ``t`` (updates on trades: Kraken's default trigger)."""
    price = Decimal(t.price)
    tick = Decimal("0.01")
    item = (
        f'{{"symbol":"{t.symbol}","bid":{number(str(price - tick))},"bid_qty":1.0,'
        f'"ask":{number(str(price + tick))},"ask_qty":1.0,"last":{number(t.price)},'
        f'"volume":1523.41826093,"vwap":{number(t.price)},"low":{number(t.price)},'
        f'"high":{number(t.price)},"change":0.0,"change_pct":0.0,'
        f'"timestamp":"{rfc3339(t.ts_ms, micros(t))}"}}'
    )
    return f'{{"channel":"ticker","type":"{kind}","data":[{item}]}}'


def rest_row(t: TapeTrade) -> str:
    """``t`` as one row of REST ``Trades``."""
    seconds = repr(time_ns(t) / 10**9)  # int / int: the correctly rounded double
    side = "s" if t.buyer_maker else "b"
    ord_type = "m" if t.agg_id % 3 == 0 else "l"
    return (
        f'["{fixed(t.price, 5)}","{fixed(t.qty, 8)}",{seconds},"{side}","{ord_type}","",{t.agg_id}]'
    )


def ohlc_rows(trades: list[TapeTrade], tf_ms: int, now_ms: int, rows: int) -> list[list[object]]:
    """OHLC of the ``rows`` intervals up to the open one at ``now_ms``; none where nothing
    traded. ``[time s, open, high, low, close, vwap, volume, count]``, money as text."""
    first = now_ms - now_ms % tf_ms - (rows - 1) * tf_ms
    buckets: dict[int, list[TapeTrade]] = {}
    for t in trades:
        if first <= t.ts_ms <= now_ms:
            buckets.setdefault(t.ts_ms - t.ts_ms % tf_ms, []).append(t)
    out: list[list[object]] = []
    for start in sorted(buckets):
        group = buckets[start]
        prices = [Decimal(t.price) for t in group]
        volume = sum((Decimal(t.qty) for t in group), Decimal(0))
        quote = sum((Decimal(t.price) * Decimal(t.qty) for t in group), Decimal(0))
        places = max(len(t.price.partition(".")[2]) for t in group)
        vwap = (quote / volume).quantize(Decimal(1).scaleb(-places))
        out.append(
            [
                start // 1000,
                group[0].price,
                str(max(prices)),
                str(min(prices)),
                group[-1].price,
                str(vwap),
                fixed(str(volume), 8),
                len(group),
            ]
        )
    return out


def status_message(connection_id: int) -> str:
    """The ``status`` push a v2 connection starts with (exchanges.md 6.1)."""
    data = {
        "api_version": "v2",
        "connection_id": connection_id,
        "system": "online",
        "version": "2.0.10",
    }
    return json.dumps(
        {"channel": "status", "type": "update", "data": [data]}, separators=(",", ":")
    )
