"""A message holding several trades is de-duplicated whole (capture's dedup rule)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.ids import StreamId
from buff_dataplane.core.trades import Trade
from buff_dataplane.pipeline.capture import Capture
from buff_dataplane.storage.log import open_log

SID = StreamId("binance-usdm", "trade", "BTC-USDT-PERP")


def trade(tid: int, size: str = "1") -> Trade:
    return Trade(
        trade_id=tid,
        price=Decimal("100"),
        size=Decimal(size),
        taker_side="buy",
        ts_ms=1_700_000_000_000 + tid,
        first_trade_id=None,
        last_trade_id=None,
    )


@pytest.fixture
def capture(tmp_path):
    log = open_log(tmp_path / "data", LogConfig(fsync=False))
    yield Capture(log, venue=SID.venue, symbols=[SID.symbol], channels=["trade"], endpoint="ws://x")
    log.close()


def test_a_batch_with_one_new_trade_is_kept_and_only_a_wholly_seen_one_skipped(capture):
    assert capture._duplicate(SID, (trade(1), trade(2))) is False
    assert capture._duplicate(SID, (trade(2), trade(3))) is False  # 3 is new: keep it whole
    assert capture._duplicate(SID, (trade(1), trade(3))) is True  # every trade seen
    assert capture.stats.duplicates == 1


def test_a_conflict_quarantines_the_batch_without_marking_its_new_trades_seen(capture):
    capture._duplicate(SID, (trade(1),))
    with pytest.raises(PayloadRejected) as exc:
        capture._duplicate(SID, (trade(2), trade(1, size="2")))
    assert exc.value.reason == "duplicate_conflict"
    # Trade 2 came only in the refused message: it is still new when it arrives again.
    assert capture._duplicate(SID, (trade(2),)) is False
    assert capture.stats.conflicts == 1
