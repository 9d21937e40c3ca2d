"""Bybit v5 linear encodings of tape trades, with the venue's field order and types.

A tape trade (Binance aggTrade terms) becomes one Bybit linear trade: its ``execId`` /
``i`` a version-5 UUID derived from the symbol and the tape id (deterministic, lower
case, like the venue's), ``S`` / ``side`` the taker's side (``Sell`` when the buyer was
the maker), ``seq`` a cross sequence that grows but is not contiguous (the venue's book
consumes values too)::

    {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[
     {"T":1786310819680,"s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20",
      "i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}
    {"execId":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","symbol":"BTCUSDT","price":"65114.20",
     "size":"0.004","side":"Sell","time":"1786310819680","isBlockTrade":false,
     "isRPITrade":false,"seq":"753843954913"}

The tick direction ``L`` is left out (it needs the previous trade; the parser treats it
as optional). :func:`klines` renders the venue's candles: newest first, text columns
``[start, open, high, low, close, volume, turnover]``, each candle opened at the previous
one's close, a flat candle for a bucket without trades, the last one still open.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from buff_dataplane.sim.tape import TapeTrade

_NAMESPACE: Final = uuid.UUID("6f1d1f0e-8a43-5b5e-9c0a-6b7962697400")
TICK: Final = Decimal("0.10")


def exec_id(t: TapeTrade) -> str:
    """The trade's id: a UUID of the symbol and tape id (``i`` / ``execId``)."""
    return str(uuid.uuid5(_NAMESPACE, f"{t.symbol}/{t.agg_id}"))


def exec_int(t: TapeTrade) -> int:
    """:func:`exec_id` as the parser reports it: the UUID's 128-bit value."""
    return uuid.uuid5(_NAMESPACE, f"{t.symbol}/{t.agg_id}").int


def cross_seq(t: TapeTrade) -> int:
    """A cross sequence: increasing with the tape, never contiguous."""
    return 700_000_000_000 + 3 * t.first_id


def side(t: TapeTrade) -> str:
    return "Sell" if t.buyer_maker else "Buy"


def trade_item(t: TapeTrade) -> str:
    """One element of a ``publicTrade`` push's ``data`` array."""
    return (
        f'{{"T":{t.ts_ms},"s":"{t.symbol}","S":"{side(t)}","v":"{t.qty}","p":"{t.price}",'
        f'"i":"{exec_id(t)}","BT":false,"RPI":false,"seq":{cross_seq(t)}}}'
    )


def public_trade_message(trades: Sequence[TapeTrade], push_ms: int) -> bytes:
    """A ``publicTrade.<SYM>`` push of ``trades`` (one symbol, time order)."""
    data = ",".join(trade_item(t) for t in trades)
    return (
        f'{{"topic":"publicTrade.{trades[0].symbol}","type":"snapshot","ts":{push_ms},'
        f'"data":[{data}]}}'
    ).encode()


def recent_trade_item(t: TapeTrade) -> str:
    """``t`` as one item of REST ``recent-trade``'s ``result.list``."""
    return (
        f'{{"execId":"{exec_id(t)}","symbol":"{t.symbol}","price":"{t.price}",'
        f'"size":"{t.qty}","side":"{side(t)}","time":"{t.ts_ms}","isBlockTrade":false,'
        f'"isRPITrade":false,"seq":"{cross_seq(t)}"}}'
    )


def tickers_delta(t: TapeTrade) -> str:
    """A ``tickers.<SYM>`` delta after ``t``: best bid/ask around its price, last price."""
    price = Decimal(t.price)
    data = {
        "symbol": t.symbol,
        "bid1Price": str(price - TICK) if price > TICK else t.price,
        "bid1Size": "1.000",
        "ask1Price": str(price + TICK),
        "ask1Size": "1.000",
        "lastPrice": t.price,
    }
    body: dict[str, object] = {"topic": f"tickers.{t.symbol}", "type": "delta", "data": data}
    body.update({"cs": cross_seq(t) + 1, "ts": t.ts_ms})
    return json.dumps(body, separators=(",", ":"))


def klines(
    trades: Sequence[TapeTrade], tf: int, start: int | None, end: int, limit: int
) -> list[list[str]]:
    """The venue's candles of ``trades`` (those that happened) opening in [start, end],
    the newest ``limit`` of them, newest first; ``end`` at most now.

    Candles run from the first trade's bucket to ``end``'s; an empty bucket is flat at
    the previous close with zero volume; a candle opens at the previous close (the first
    one at its first trade).
    """
    if not trades:
        return []
    first = trades[0].ts_ms - trades[0].ts_ms % tf
    lo = first if start is None else max(first, start + (-start) % tf)
    hi = end - end % tf
    buckets = list(range(lo, hi + 1, tf))[-limit:] if limit > 0 else []
    if not buckets:
        return []
    by_bucket: dict[int, list[TapeTrade]] = {}
    prev_close: str | None = None
    for t in trades:
        b = t.ts_ms - t.ts_ms % tf
        if b < buckets[0]:
            prev_close = t.price
        elif b <= buckets[-1]:
            by_bucket.setdefault(b, []).append(t)
    out: list[list[str]] = []
    for b in buckets:
        rows = by_bucket.get(b, [])
        if rows:
            prices = [Decimal(t.price) for t in rows]
            volume = sum((Decimal(t.qty) for t in rows), Decimal(0))
            turnover = sum((Decimal(t.price) * Decimal(t.qty) for t in rows), Decimal(0))
            opened = prev_close if prev_close is not None else rows[0].price
            row = [str(b), opened, str(max(prices)), str(min(prices)), rows[-1].price]
            out.append([*row, str(volume), str(turnover)])
            prev_close = rows[-1].price
        else:
            assert prev_close is not None  # buckets start at a trade's
            out.append([str(b), prev_close, prev_close, prev_close, prev_close, "0", "0"])
    out.reverse()
    return out
