"""OKX v5 swap encodings of tape trades, with the venue's field order (exchanges.md 4.3-4.7).

A tape trade is one OKX ``trades`` print: ``count`` matches (the tape's ``first_id`` ..
``last_id``) at one price, the print's ``tradeId`` being the last of them. REST
``history-trades`` serves the matches one by one: the print's size split over them
(exactly: at six decimals, the remainder on the last match), each with its own id::

    {"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
     "tradeId":"5266583937","px":"61800.30","sz":"0.125","side":"sell","ts":"1723161600012",
     "count":"3","source":"0","seqId":2353245000}]}
    {"instId":"BTC-USDT-SWAP","side":"sell","sz":"0.041666","source":"0","px":"61800.30",
     "tradeId":"5266583935","ts":"1723161600012"}

Sizes are contracts (``ctVal`` :data:`CT_VAL` base units each), as OKX sends for swaps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Final

from buff_dataplane.sim.tape import TapeTrade

CT_VAL: Final = "0.01"  # base currency per contract (BTC-USDT-SWAP's)
_SPLIT_DECIMALS: Final = 6


def side(t: TapeTrade) -> str:
    """OKX reports the taker's side: a buyer-maker trade was a taker sell."""
    return "sell" if t.buyer_maker else "buy"


def _text(units: int, decimals: int) -> str:
    whole, frac = divmod(units, 10**decimals)
    text = f"{whole}.{frac:0{decimals}d}".rstrip("0")
    return text.rstrip(".")


def match_sizes(t: TapeTrade) -> list[str]:
    """The sizes of the print's matches, in id order, summing exactly to ``t.qty``."""
    count = t.last_id - t.first_id + 1
    units = int(Decimal(t.qty).scaleb(_SPLIT_DECIMALS))
    each = units // count  # >= 1: a tape qty is at least 0.001, a print at most 7 matches
    sizes = [each] * count
    sizes[-1] += units - each * count
    return [_text(u, _SPLIT_DECIMALS) for u in sizes]


def matches(t: TapeTrade) -> Iterator[tuple[int, str]]:
    """(trade id, size) of each match of the print, newest first (as REST pages run)."""
    sizes = match_sizes(t)
    for i in range(t.last_id, t.first_id - 1, -1):
        yield i, sizes[i - t.first_id]


def trades_push(t: TapeTrade) -> str:
    """The ``trades`` push of one print."""
    count = t.last_id - t.first_id + 1
    return (
        f'{{"arg":{{"channel":"trades","instId":"{t.symbol}"}},"data":[{{"instId":"{t.symbol}",'
        f'"tradeId":"{t.last_id}","px":"{t.price}","sz":"{t.qty}","side":"{side(t)}",'
        f'"ts":"{t.ts_ms}","count":"{count}","source":"0","seqId":{t.agg_id}}}]}}'
    )


def history_item(t: TapeTrade, trade_id: int, size: str) -> str:
    """One REST ``history-trades`` item: a match of print ``t``."""
    return (
        f'{{"instId":"{t.symbol}","side":"{side(t)}","sz":"{size}","source":"0",'
        f'"px":"{t.price}","tradeId":"{trade_id}","ts":"{t.ts_ms}"}}'
    )


def tickers_push(t: TapeTrade) -> str:
    """A ``tickers`` push around ``t``: last trade, best bid/ask one tick either side."""
    price = Decimal(t.price)
    tick = Decimal(1).scaleb(price.as_tuple().exponent)  # type: ignore[arg-type]
    item = {
        "instType": "SWAP",
        "instId": t.symbol,
        "last": t.price,
        "lastSz": t.qty,
        "askPx": str(price + tick),
        "askSz": "1",
        "bidPx": str(price - tick),
        "bidSz": "1",
        "ts": str(t.ts_ms),
    }
    push = {"arg": {"channel": "tickers", "instId": t.symbol}, "data": [item]}
    return json.dumps(push, separators=(",", ":"))


def mark_price_push(symbol: str, price: str, now: int) -> str:
    item = {"instType": "SWAP", "instId": symbol, "markPx": price, "ts": str(now)}
    push = {"arg": {"channel": "mark-price", "instId": symbol}, "data": [item]}
    return json.dumps(push, separators=(",", ":"))


def candle_rows(trades: list[TapeTrade], tf: int, now: int) -> list[list[str]]:
    """OKX candles of ``trades`` (ascending), oldest first; no row for an empty bucket.

    ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``: ``vol`` in contracts,
    ``volCcy`` in base units (``vol * ctVal``), ``volCcyQuote`` their quote value;
    ``confirm`` is ``"1"`` once the bucket has ended.
    """
    ct_val = Decimal(CT_VAL)
    buckets: dict[int, list[TapeTrade]] = {}
    for t in trades:
        buckets.setdefault(t.ts_ms - t.ts_ms % tf, []).append(t)
    rows: list[list[str]] = []
    for start in sorted(buckets):
        rows_ = buckets[start]
        prices = [Decimal(t.price) for t in rows_]
        vol = sum((Decimal(t.qty) for t in rows_), Decimal(0))
        quote = sum((Decimal(t.price) * Decimal(t.qty) * ct_val for t in rows_), Decimal(0))
        rows.append(
            [
                str(start),
                rows_[0].price,
                rows_[prices.index(max(prices))].price,
                rows_[prices.index(min(prices))].price,
                rows_[-1].price,
                format(vol, "f"),
                format(vol * ct_val, "f"),
                format(quote, "f"),
                "1" if start + tf <= now else "0",
            ]
        )
    return rows
