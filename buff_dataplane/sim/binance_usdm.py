"""Binance USD-M message encodings of tape trades, with the venue's exact field order."""

from __future__ import annotations

import json
from decimal import Decimal

from buff_dataplane.sim.tape import TapeTrade


def agg_trade_data(t: TapeTrade, event_ms: int) -> str:
    m = "true" if t.buyer_maker else "false"
    return (
        f'{{"e":"aggTrade","E":{event_ms},"a":{t.agg_id},"s":"{t.symbol}","p":"{t.price}",'
        f'"q":"{t.qty}","f":{t.first_id},"l":{t.last_id},"T":{t.ts_ms},"m":{m}}}'
    )


def combined(stream: str, data: str) -> str:
    """The combined-stream wrapper (Binance, both markets) around one message's data."""
    return f'{{"stream":"{stream}","data":{data}}}'


def agg_trade_message(t: TapeTrade, event_ms: int | None = None) -> bytes:
    """The combined-stream WebSocket message of ``t`` (``E`` defaults to ``T``)."""
    data = agg_trade_data(t, t.ts_ms if event_ms is None else event_ms)
    return combined(f"{t.symbol.lower()}@aggTrade", data).encode()


def rest_agg_trade_item(t: TapeTrade) -> bytes:
    """``t`` as one item of REST ``GET /fapi/v1/aggTrades`` (canonical: no spaces)."""
    m = "true" if t.buyer_maker else "false"
    return (
        f'{{"a":{t.agg_id},"p":"{t.price}","q":"{t.qty}","f":{t.first_id},'
        f'"l":{t.last_id},"T":{t.ts_ms},"m":{m}}}'
    ).encode()


def book_ticker_data(t: TapeTrade) -> str:
    """A bookTicker around ``t``'s price (one per trade), with the venue's times."""
    price = Decimal(t.price)
    bid, ask = price - Decimal("0.1"), price + Decimal("0.1")
    return json.dumps(
        {
            "e": "bookTicker",
            "u": t.agg_id,
            "s": t.symbol,
            "b": str(bid),
            "B": "1.000",
            "a": str(ask),
            "A": "1.000",
            "T": t.ts_ms,
            "E": t.ts_ms + 1,
        },
        separators=(",", ":"),
    )


def mark_price_data(symbol: str, price: str, now: int) -> str:
    """A markPriceUpdate at ``price`` (the last trade's), with the next 8 h funding time."""
    next_funding = now - now % 28_800_000 + 28_800_000
    return json.dumps(
        {
            "e": "markPriceUpdate",
            "E": now,
            "s": symbol,
            "p": price,
            "i": price,
            "P": price,
            "r": "0.00010000",
            "T": next_funding,
        },
        separators=(",", ":"),
    )
