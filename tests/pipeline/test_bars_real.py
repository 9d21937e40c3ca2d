"""1m bars from a real Binance USD-M capture, against values computed here from the file.

The expected values below are computed in this test straight from the capture text
(json + Decimal), independently of the product's parsers and engines, and the first
minute's are also written out as literals to pin them.
"""

import gzip
import json
from collections import defaultdict
from decimal import Decimal

import pytest

from buff_dataplane.cli import main
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore

MIN_2355 = 1723161300000  # 2024-08-08T23:55:00Z
KEY = ArtifactKey("binance-usdm", "BTC-USDT-PERP", "1m")


def _independent_bars(path):
    buckets = defaultdict(list)
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        msg = json.loads(line.split(" ", 1)[1])
        d = msg.get("data", {})
        if d.get("e") == "trade":
            buckets[d["T"] - d["T"] % 60_000].append(d)
    out = {}
    for start, trades in buckets.items():
        trades.sort(key=lambda d: (d["T"], d["t"]))
        prices = [Decimal(d["p"]) for d in trades]
        buys = [d for d in trades if not d["m"]]
        out[start] = {
            "open": prices[0],
            "high": max(prices),
            "low": min(prices),
            "close": prices[-1],
            "volume": sum(Decimal(d["q"]) for d in trades),
            "quote_volume": sum(Decimal(d["p"]) * Decimal(d["q"]) for d in trades),
            "trade_count": len(trades),
            "taker_buy_volume": sum(Decimal(d["q"]) for d in buys),
            "taker_buy_quote_volume": sum(Decimal(d["p"]) * Decimal(d["q"]) for d in buys),
            "first_trade_id": min(d["t"] for d in trades),
            "last_trade_id": max(d["t"] for d in trades),
        }
    return out


@pytest.mark.real_fixtures
@pytest.mark.parametrize("engine", ["reference", "sql"])
def test_whole_minutes_2355_to_2359_match_the_capture(tmp_path, real_fixtures, engine):
    path = real_fixtures / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    data = tmp_path / "data"
    assert (
        main(
            [
                "import",
                str(path),
                "--venue",
                "binance-usdm",
                "--format",
                "hftbacktest",
                "--data",
                str(data),
            ]
        )
        == 0
    )
    assert main(["canonicalize", "--data", str(data), "--engine", engine]) == 0
    bars = {b.open_time_ms: b for b in BarStore(data).read_bars(KEY, 1)}
    expected = _independent_bars(path)
    # The capture starts at 23:54:16: that minute cannot be proven whole.
    assert bars[MIN_2355 - 60_000].status == "GAP_UNRESOLVED"
    whole = [MIN_2355 + i * 60_000 for i in range(5)]
    assert sorted(bars) == [MIN_2355 - 60_000, *whole]
    for start in whole:
        bar, want = bars[start], expected[start]
        assert bar.status == "COMPLETE", start
        for field, value in want.items():
            got = getattr(bar, field)
            assert (Decimal(got) if isinstance(got, str) else got) == value, (start, field)
    first = bars[MIN_2355]
    assert (first.open, first.high, first.low, first.close) == (
        "61807.7",
        "61839.9",
        "61760.3",
        "61760.3",
    )
    assert (first.volume, first.trade_count) == ("136.45", 2005)
