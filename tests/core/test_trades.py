"""The content identity of a trade: what two reports of one trade id must share."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from buff_dataplane.core.trades import Trade, content_digest, content_key

T = Trade(
    trade_id=7,
    price=Decimal("61797.50"),
    size=Decimal("0.010"),
    taker_side="buy",
    ts_ms=1_723_161_256_000,
    first_trade_id=100,
    last_trade_id=102,
)


def test_the_same_trade_in_other_decimal_text_is_the_same_content() -> None:
    same = msgspec.structs.replace(T, price=Decimal("61797.5"), size=Decimal("0.01"))
    assert content_key(same) == content_key(T)
    assert content_digest(same) == content_digest(T)


def test_any_field_that_matters_changes_the_digest() -> None:
    changes = [
        {"price": Decimal("61797.51")},
        {"size": Decimal("0.011")},
        {"taker_side": "sell"},
        {"ts_ms": T.ts_ms + 1},
        {"first_trade_id": 101},
        {"last_trade_id": None},
    ]
    digests = {content_digest(msgspec.structs.replace(T, **c)) for c in changes}
    assert len(digests) == len(changes) and content_digest(T) not in digests


def test_the_digest_is_a_64_bit_int_equal_for_equal_content() -> None:
    digest = content_digest(T)
    assert isinstance(digest, int) and -(2**63) <= digest < 2**63
    assert content_digest(msgspec.structs.replace(T, trade_id=8)) == digest  # not the id
