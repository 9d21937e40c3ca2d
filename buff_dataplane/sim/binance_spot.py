"""Binance spot message encodings of tape trades, with the venue's exact field order.

Spot differs from USD-M on the wire: aggTrade orders its fields ``e E s a p q f l T m M``
(``M``, "ignore", is always true), a REST item ends with ``M`` too, and bookTicker has no
event type and no times::

    {"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",
     "f":100,"l":105,"T":1672515782136,"m":true,"M":true}
    {"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000",
     "A":"40.66000000"}
"""

from __future__ import annotations

import json
from decimal import Decimal

from buff_dataplane.sim.binance_usdm import combined
from buff_dataplane.sim.binance_usdm import rest_agg_trade_item as usdm_rest_item
from buff_dataplane.sim.tape import TapeTrade


def agg_trade_data(t: TapeTrade, event_ms: int) -> str:
    m = "true" if t.buyer_maker else "false"
    return (
        f'{{"e":"aggTrade","E":{event_ms},"s":"{t.symbol}","a":{t.agg_id},"p":"{t.price}",'
        f'"q":"{t.qty}","f":{t.first_id},"l":{t.last_id},"T":{t.ts_ms},"m":{m},"M":true}}'
    )


def agg_trade_message(t: TapeTrade, event_ms: int | None = None) -> bytes:
    """The combined-stream WebSocket message of ``t`` (``E`` defaults to ``T``)."""
    data = agg_trade_data(t, t.ts_ms if event_ms is None else event_ms)
    return combined(f"{t.symbol.lower()}@aggTrade", data).encode()


def rest_agg_trade_item(t: TapeTrade) -> bytes:
    """``t`` as one item of REST ``GET /api/v3/aggTrades``: USD-M's, then ``"M":true``."""
    return usdm_rest_item(t)[:-1] + b',"M":true}'


def book_ticker_data(t: TapeTrade) -> str:
    """A spot bookTicker around ``t``'s price: update id, symbol, best bid/ask and sizes."""
    price = Decimal(t.price)
    bid, ask = price - Decimal("0.01"), price + Decimal("0.01")
    body = {"u": t.agg_id, "s": t.symbol, "b": str(bid), "B": "1.000", "a": str(ask), "A": "1.000"}
    return json.dumps(body, separators=(",", ":"))
