"""Coinbase Exchange encodings of tape trades, in the venue's field order (exchanges.md 5).

A tape trade's ``agg_id`` is the product's ``trade_id`` (one match per print, contiguous);
``side`` is the MAKER's side (a tape trade whose buyer is the maker is ``"buy"``: the
taker sold). Order ids are UUIDs derived from the trade id; ``sequence`` is the product's
feed counter, four steps per trade (the other three stand for the order messages a
``matches`` subscriber does not see), so jumps in it are normal as on the venue::

    {"type":"match","trade_id":2353245000,"maker_order_id":"...","taker_order_id":"...",
     "side":"sell","size":"0.006","price":"61800.31","product_id":"BTC-USD",
     "sequence":59412980000,"time":"2024-08-09T00:00:00.273729Z"}
    {"type":"heartbeat","sequence":59412980001,"last_trade_id":2353245000,
     "product_id":"BTC-USD","time":"2024-08-09T00:00:01.000000Z"}
    {"time":"2024-08-09T00:00:00.273Z","trade_id":2353245000,"price":"61800.31000000",
     "size":"0.00600000","side":"sell"}                                   (a REST item)

WebSocket times carry microseconds (digits derived from the trade id, so the same trade
is always the same text); REST items carry milliseconds and pad money to eight decimals
as the venue's documented example does. Both parse to the same trade.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Final

from buff_dataplane.sim.tape import TapeTrade

SEQ_BASE: Final = 50_000_000_000
_EIGHT: Final = Decimal("0.00000001")


def sequence(trade_id: int, step: int = 0) -> int:
    """The feed sequence of trade ``trade_id``'s match (``step`` 1: a heartbeat after it,
    2: its ticker)."""
    return SEQ_BASE + 4 * trade_id + step


def iso_ms(ms: int) -> str:
    """``2024-08-09T00:00:00.273Z``."""
    day = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ms % 1000:03d}Z"


def iso_us(ms: int, salt: int = 0) -> str:
    """``2024-08-09T00:00:00.273729Z``: ``ms`` with three more digits from ``salt``."""
    return f"{iso_ms(ms)[:-1]}{(salt * 7919) % 1000:03d}Z"


def order_id(n: int) -> str:
    mixed = (n * 0x9E3779B97F4A7C15F39CC0605CEDC835 + 0x632BE59BD9B4E019) % (1 << 128)
    return str(uuid.UUID(int=mixed, version=4))


def maker_side(t: TapeTrade) -> str:
    return "buy" if t.buyer_maker else "sell"


def match_message(t: TapeTrade, kind: str = "match") -> bytes:
    """The ``match`` (or ``last_match``) of ``t``: the order of a real capture's keys."""
    return (
        f'{{"type":"{kind}","trade_id":{t.agg_id},"maker_order_id":"{order_id(2 * t.agg_id)}",'
        f'"taker_order_id":"{order_id(2 * t.agg_id + 1)}","side":"{maker_side(t)}",'
        f'"size":"{t.qty}","price":"{t.price}","product_id":"{t.symbol}",'
        f'"sequence":{sequence(t.agg_id)},"time":"{iso_us(t.ts_ms, t.agg_id)}"}}'
    ).encode()


def heartbeat_message(product: str, last_trade_id: int, now: int) -> str:
    return (
        f'{{"type":"heartbeat","sequence":{sequence(last_trade_id, 1)},'
        f'"last_trade_id":{last_trade_id},"product_id":"{product}","time":"{iso_us(now)}"}}'
    )


def ticker_message(t: TapeTrade) -> str:
    """The ``ticker`` a match produces: last price and size, best bid/ask around it."""
    price = Decimal(t.price)
    body = {
        "type": "ticker",
        "sequence": sequence(t.agg_id, 2),
        "product_id": t.symbol,
        "price": t.price,
        "best_bid": str(price - Decimal("0.01")),
        "best_bid_size": "1.00000000",
        "best_ask": str(price + Decimal("0.01")),
        "best_ask_size": "1.00000000",
        "side": "sell" if t.buyer_maker else "buy",  # the taker's side on the ticker
        "time": iso_us(t.ts_ms, t.agg_id),
        "trade_id": t.agg_id,
        "last_size": t.qty,
    }
    return json.dumps(body, separators=(",", ":"))


def rest_trade_item(t: TapeTrade) -> bytes:
    """``t`` as one item of REST ``GET /products/{id}/trades``."""
    price, size = Decimal(t.price).quantize(_EIGHT), Decimal(t.qty).quantize(_EIGHT)
    return (
        f'{{"time":"{iso_ms(t.ts_ms)}","trade_id":{t.agg_id},"price":"{price}",'
        f'"size":"{size}","side":"{maker_side(t)}"}}'
    ).encode()


def candles(trades: list[TapeTrade], granularity_s: int, first: int, last: int) -> str:
    """Candle rows ``[time, low, high, open, close, volume]`` (JSON numbers, as the
    venue's documentation shows), newest first, for buckets opening in [first, last] ms
    that hold trades: an empty bucket has no row."""
    step = granularity_s * 1000
    buckets: dict[int, list[TapeTrade]] = {}
    for t in trades:
        b = t.ts_ms - t.ts_ms % step
        if first <= b <= last:
            buckets.setdefault(b, []).append(t)
    rows = []
    for b in sorted(buckets, reverse=True):
        got = buckets[b]
        prices = [Decimal(t.price) for t in got]
        volume = sum((Decimal(t.qty) for t in got), Decimal(0))
        rows.append(
            f"[{b // 1000},{min(prices)},{max(prices)},{got[0].price},{got[-1].price},{volume}]"
        )
    return "[" + ",".join(rows) + "]"
