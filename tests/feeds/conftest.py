"""Readers for the real recorded files under ``real_fixtures`` (see its README for formats)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

# (1-based line number in the file, the raw message bytes; b"" for an empty line)
RealLines = list[tuple[int, bytes]]


def _read(path: Path) -> RealLines:
    name = path.name
    if name.endswith(".gz"):  # hftbacktest: "<local receive ns> <raw message>"
        with gzip.open(path) as f:
            lines = f.read().splitlines()
        return [(n, line.partition(b" ")[2]) for n, line in enumerate(lines, 1)]
    lines = path.read_bytes().splitlines()
    if ".ws." in name:  # cryptofeed: "<url> <-> <start>" then "<receive s>: <raw message>"
        return [  # "<url> <- <ts>: <message>" lines are what the recorder sent: left out
            (n, line.partition(b": ")[2])
            for n, line in enumerate(lines[1:], 2)
            if b" <- " not in line.partition(b": ")[0]
        ]
    if ".http." in name:  # cryptofeed REST: "<url> -> <receive s>: <body>"
        return [(n, line.partition(b": ")[2]) for n, line in enumerate(lines, 1)]
    raise ValueError(f"no reader for {path}")


@pytest.fixture(scope="session")
def real_messages(real_fixtures: Path) -> Callable[[str], RealLines]:
    """``read("cryptofeed/BINANCE.ws.1.0")``: every message line of that recorded file."""
    cache: dict[str, RealLines] = {}

    def read(relpath: str) -> RealLines:
        if relpath not in cache:
            cache[relpath] = _read(real_fixtures / relpath)
        return cache[relpath]

    return read


@dataclass(frozen=True)
class V3Capture:
    """A cryptofeed v3 recording: each connection's URL, and every received message."""

    addr: dict[str, str]  # connection id -> URL
    messages: list[tuple[int, str, bytes]]  # (line number, connection id, message bytes)

    def of(self, conn: str) -> RealLines:
        return [(n, payload) for n, c, payload in self.messages if c == conn]


@pytest.fixture(scope="session")
def real_v3(real_fixtures: Path) -> Callable[[str], V3Capture]:
    """``read("cryptofeed/v3/BYBIT.jsonl.zst")``: connections and received messages."""
    cache: dict[str, V3Capture] = {}

    def read(relpath: str) -> V3Capture:
        if relpath not in cache:
            raw = (
                zstandard.ZstdDecompressor()
                .stream_reader((real_fixtures / relpath).read_bytes())
                .read()
            )
            addr: dict[str, str] = {}
            messages: list[tuple[int, str, bytes]] = []
            for n, line in enumerate(raw.splitlines(), 1):
                record = json.loads(line)
                if record["t"] == "connect":
                    addr[record["conn"]] = record["addr"]
                elif record["t"] == "recv":
                    messages.append((n, record["conn"], record["data"].encode()))
            cache[relpath] = V3Capture(addr, messages)
        return cache[relpath]

    return read
