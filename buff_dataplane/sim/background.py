"""An :class:`~buff_dataplane.sim.server.ExchangeSim` on its own event loop in a thread.

For callers that run their own ``asyncio.run`` (the CLI functions, a capture process's
tests, the demo) while the simulator must stay up across them::

    with SimThread(SimConfig(...)) as sim:
        main(["backfill", "--rest-endpoint", sim.rest_url, ...])
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from buff_dataplane.sim.server import ExchangeSim, SimConfig, wall_ms


class SimThread:
    def __init__(self, config: SimConfig, clock: Callable[[], int] = wall_ms) -> None:
        self.loop = asyncio.new_event_loop()
        self.sim = ExchangeSim(config, clock=clock)
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim", daemon=True)

    def __enter__(self) -> ExchangeSim:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
