"""Whatever the bytes, a venue parser returns a consistent Parsed or raises PayloadRejected."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS
from buff_dataplane.core.ids import CHANNELS, validate_symbol
from buff_dataplane.feeds import binance_common
from buff_dataplane.feeds.base import TAKER_SIDES, Parsed, Parser
from buff_dataplane.feeds.binance_spot.parse import PARSER as SPOT
from buff_dataplane.feeds.binance_usdm.parse import PARSER as USDM
from buff_dataplane.feeds.bybit_linear import parse as bybit
from buff_dataplane.feeds.coinbase import parse as coinbase
from buff_dataplane.feeds.kraken import parse as kraken
from buff_dataplane.feeds.okx_swap import parse as okx

HERE = Path(__file__).parent


def _seeds(*dirs: str) -> list[bytes]:
    return sorted(
        p.read_bytes()
        for d in dirs
        for p in HERE.glob(f"{d}/payloads/*.json")
        if 0 < p.stat().st_size < 8192
    )


BINANCE_SEEDS = _seeds("binance_usdm", "binance_spot")
# parser -> (its kinds and their channels, the recorded payloads it is fuzzed from)
VENUES: dict[Parser, tuple[dict[str, str], list[bytes]]] = {
    USDM: (dict(binance_common.CHANNEL_OF_KIND), BINANCE_SEEDS),
    SPOT: (dict(binance_common.CHANNEL_OF_KIND), BINANCE_SEEDS),
    bybit.PARSER: (dict(bybit.CHANNEL_OF_KIND), _seeds("bybit_linear")),
    okx.PARSER: (dict(okx.CHANNEL_OF_KIND), _seeds("okx_swap")),
    coinbase.PARSER: (dict(coinbase.CHANNEL_OF_KIND), _seeds("coinbase")),
    kraken.PARSER: (dict(kraken.CHANNEL_OF_KIND), _seeds("kraken")),
}
PARSERS = list(VENUES)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(max_examples=300, deadline=None)


def check(parser: Parser, payload: bytes) -> Parsed | None:
    """Parse; only PayloadRejected may escape, and a result keeps every promise of Parsed."""
    try:
        p = parser.parse(payload)
    except PayloadRejected as exc:
        assert exc.reason.isidentifier() and exc.reason.islower()
        return None
    assert p.channel == VENUES[parser][0][p.kind] and p.channel in CHANNELS
    assert (p.symbol is None) == (p.venue_symbol is None)
    if p.symbol is not None:
        validate_symbol(p.symbol)
    ts = p.event_ts_exchange_ms
    assert ts is None or MIN_TS_MS <= ts <= MAX_TS_MS
    assert bool(p.trades) == (p.channel == "trade")
    for t in p.trades:
        assert type(t.price) is Decimal and type(t.size) is Decimal
        assert t.price > 0 and t.size > 0
        assert t.taker_side in TAKER_SIDES
        assert type(t.trade_id) is int and t.trade_id >= 0
        assert (t.first_trade_id is None) == (t.last_trade_id is None)
        if t.first_trade_id is not None and t.last_trade_id is not None:
            assert 0 <= t.first_trade_id <= t.last_trade_id
    if p.trades:
        assert ts == min(t.ts_ms for t in p.trades)
    return p


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.venue)
@FUZZ
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes(parser, payload):
    check(parser, payload)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.venue)
@FUZZ
@given(
    data=st.data(),
    edits=st.lists(st.tuples(st.integers(0, 8191), st.integers(-1, 255)), min_size=1, max_size=4),
)
def test_mutated_recorded_payloads(parser, data, edits):
    seed = data.draw(st.sampled_from(VENUES[parser][1]))
    data = bytearray(seed)
    for pos, byte in edits:
        i = pos % (len(data) + 1)
        if byte < 0:
            del data[i : i + 1]
        else:
            data[i:i] = bytes([byte])
    check(parser, bytes(data))


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [q for k, v in value.items() for q in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [path] + [q for i, v in enumerate(value) for q in _leaf_paths(v, (*path, i))]
    return [path]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.venue)
@FUZZ
@given(data=st.data())
def test_recorded_payloads_with_one_value_replaced(parser, data):
    seeds = [s for s in VENUES[parser][1] if _is_json(s)]
    doc = json.loads(data.draw(st.sampled_from(seeds)))
    path = data.draw(st.sampled_from(_leaf_paths(doc)))
    new = data.draw(JSON)
    check(parser, json.dumps(_replace(doc, path, new)).encode())


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("parser", [USDM, *PARSERS[2:]], ids=lambda p: p.venue)
def test_seeds_cover_every_shape(parser):
    channels, seeds = VENUES[parser]
    parsers = [USDM, SPOT] if parser is USDM else [parser]
    kinds = {p.kind for s in seeds for q in parsers if (p := check(q, s)) is not None}
    assert kinds == set(channels)
