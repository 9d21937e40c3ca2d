"""buff sim without --symbols plays the venue's BTC market in the venue's own name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from buff_dataplane.cli.capture_cmds import _sim_default
from buff_dataplane.core.ids import VENUES
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.feeds.rest_registry import history_for


@pytest.mark.parametrize("venue", ["kraken", "okx-swap"])
def test_sim_without_symbols_serves_a_market_the_venue_client_lists(venue):
    argv = [sys.executable, "-m", "buff_dataplane", "sim", "--venue", venue, "--port", "0"]
    proc = subprocess.Popen([*argv, "--duration", "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())

        async def listed() -> list[str]:
            async with history_for(venue, urls["rest"]) as client:
                return await client.symbols()

        [symbol] = asyncio.run(listed())
    finally:
        proc.terminate()
        proc.wait(10)
    assert parser_for(venue).to_canonical(symbol).startswith("BTC-")


@pytest.mark.parametrize("venue", VENUES)
def test_every_venue_has_a_default_simulated_market(venue):
    [symbol] = _sim_default(venue)
    assert parser_for(venue).to_canonical(symbol).startswith("BTC-")
