"""Whatever the bytes, a Binance parser returns a consistent Parsed or raises PayloadRejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS
from buff_dataplane.core.ids import CHANNELS, validate_symbol
from buff_dataplane.feeds.base import TAKER_SIDES, Parsed
from buff_dataplane.feeds.binance_common import CHANNEL_OF_KIND, BinanceParser
from buff_dataplane.feeds.binance_spot.parse import PARSER as SPOT
from buff_dataplane.feeds.binance_usdm.parse import PARSER as USDM

HERE = Path(__file__).parent
SEEDS = sorted(
    p.read_bytes()
    for p in [
        *HERE.glob("binance_usdm/payloads/*.json"),
        *HERE.glob("binance_spot/payloads/*.json"),
    ]
    if 0 < p.stat().st_size < 2048
)
PARSERS = [USDM, SPOT]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(max_examples=300, deadline=None)


def check(parser: BinanceParser, payload: bytes) -> Parsed | None:
    """Parse; only PayloadRejected may escape, and a result keeps every promise of Parsed."""
    try:
        p = parser.parse(payload)
    except PayloadRejected as exc:
        assert exc.reason.isidentifier() and exc.reason.islower()
        return None
    assert p.channel == CHANNEL_OF_KIND[p.kind] and p.channel in CHANNELS
    assert (p.symbol is None) == (p.venue_symbol is None)
    if p.symbol is not None:
        validate_symbol(p.symbol)
    ts = p.event_ts_exchange_ms
    assert ts is None or MIN_TS_MS <= ts <= MAX_TS_MS
    assert (p.trade is not None) == (p.channel == "trade")
    if p.trade is not None:
        assert p.trade.price > 0 and p.trade.size > 0
        assert p.trade.taker_side in TAKER_SIDES
        assert p.trade.ts_ms == ts
    return p


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.venue)
@FUZZ
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes(parser, payload):
    check(parser, payload)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.venue)
@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 2047), st.integers(-1, 255)), min_size=1, max_size=4),
)
def test_mutated_recorded_payloads(parser, seed, edits):
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
    seeds = [s for s in SEEDS if _is_json(s)]
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


def test_seeds_cover_every_shape():
    kinds = {p.kind for s in SEEDS for parser in PARSERS if (p := check(parser, s)) is not None}
    assert kinds == set(CHANNEL_OF_KIND)
