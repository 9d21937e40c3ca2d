"""Binance USD-M message encodings of tape trades, with the venue's exact field order."""

from __future__ import annotations

from buff_dataplane.sim.tape import TapeTrade


def agg_trade_data(t: TapeTrade, event_ms: int) -> str:
    m = "true" if t.buyer_maker else "false"
    return (
        f'{{"e":"aggTrade","E":{event_ms},"a":{t.agg_id},"s":"{t.symbol}","p":"{t.price}",'
        f'"q":"{t.qty}","f":{t.first_id},"l":{t.last_id},"T":{t.ts_ms},"m":{m}}}'
    )


def agg_trade_message(t: TapeTrade, event_ms: int | None = None) -> bytes:
    """The combined-stream WebSocket message of ``t`` (``E`` defaults to ``T``)."""
    data = agg_trade_data(t, t.ts_ms if event_ms is None else event_ms)
    return f'{{"stream":"{t.symbol.lower()}@aggTrade","data":{data}}}'.encode()


def rest_agg_trade_item(t: TapeTrade) -> bytes:
    """``t`` as one item of REST ``GET /fapi/v1/aggTrades`` (canonical: no spaces)."""
    m = "true" if t.buyer_maker else "false"
    return (
        f'{{"a":{t.agg_id},"p":"{t.price}","q":"{t.qty}","f":{t.first_id},'
        f'"l":{t.last_id},"T":{t.ts_ms},"m":{m}}}'
    ).encode()
