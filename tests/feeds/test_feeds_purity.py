"""The parsers are pure: importing them loads no I/O, network or columnar machinery."""

import json
import subprocess
import sys

FORBIDDEN = ("asyncio", "httpx", "websockets", "pyarrow", "duckdb", "polars", "socket", "zstandard")
PARSERS = (
    "buff_dataplane.feeds.binance_usdm.parse",
    "buff_dataplane.feeds.binance_spot.parse",
    "buff_dataplane.feeds.bybit_linear.parse",
    "buff_dataplane.feeds.okx_swap.parse",
    "buff_dataplane.feeds.coinbase.parse",
    "buff_dataplane.feeds.kraken.parse",
)


def test_importing_the_parsers_loads_no_io_modules():
    code = (
        "import sys, json; import buff_dataplane.feeds.registry;"
        f"assert all(m in sys.modules for m in {PARSERS!r});"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
