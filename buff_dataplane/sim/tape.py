"""A deterministic, seeded trade tape: random walk, bursts and quiet minutes.

The same (symbol, seed, start, duration, rate) always gives the same trades, so the
tape's true bars are known and anything built from a capture of it can be checked.
Prices are integer ticks rendered as decimal text; nothing passes through float.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TapeTrade:
    """One aggregated trade, in Binance aggTrade terms (ids, price/qty text, taker side)."""

    symbol: str  # venue symbol, e.g. BTCUSDT
    agg_id: int
    price: str
    qty: str
    first_id: int
    last_id: int
    ts_ms: int
    buyer_maker: bool


@dataclass(frozen=True)
class TapeSpec:
    symbol: str
    start_ms: int
    duration_ms: int
    seed: int = 1
    rate_per_s: float = 5.0
    start_price_ticks: int = 6_180_030
    tick_decimals: int = 2
    qty_decimals: int = 3
    quiet_minutes: tuple[int, ...] = ()  # minute offsets from start with no trades
    first_agg_id: int = 2_353_245_000
    first_trade_id: int = 5_266_583_935


def _text(units: int, decimals: int) -> str:
    whole, frac = divmod(units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"


def generate(spec: TapeSpec) -> list[TapeTrade]:
    """The trades of ``spec`` in exchange-time order (ties keep id order)."""
    rng = random.Random(spec.seed * 1_000_003 + zlib.crc32(spec.symbol.encode()))
    quiet = set(spec.quiet_minutes)
    mean_gap_ms = 1000.0 / spec.rate_per_s
    price = spec.start_price_ticks
    agg_id, trade_id = spec.first_agg_id, spec.first_trade_id
    # Time advances in fractional ms (a seeded float, never money): at rates above
    # 1,000/s whole-ms gaps would round to zero and the tape would never advance.
    clock = float(spec.start_ms)
    end = spec.start_ms + spec.duration_ms
    out: list[TapeTrade] = []
    while True:
        burst = rng.random() < 0.05
        clock += 0.0 if burst else rng.expovariate(1.0 / mean_gap_ms)
        ts = int(clock)
        if ts >= end:
            break
        if (ts - spec.start_ms) // 60_000 in quiet:
            continue
        price = max(1, price + rng.choice((-3, -1, -1, 0, 0, 0, 1, 1, 3)))
        count = rng.choice((1, 1, 1, 1, 2, 3, 7))
        qty_units = rng.choice((1, 2, 5, 6, 10, 25, 125, 1500))
        out.append(
            TapeTrade(
                symbol=spec.symbol,
                agg_id=agg_id,
                price=_text(price, spec.tick_decimals),
                qty=_text(qty_units, spec.qty_decimals),
                first_id=trade_id,
                last_id=trade_id + count - 1,
                ts_ms=ts,
                buyer_maker=rng.random() < 0.5,
            )
        )
        agg_id += 1
        trade_id += count
    return out
