"""Readers for the real recorded files under ``real_fixtures`` (see its README for formats)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

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
        return [(n, line.partition(b": ")[2]) for n, line in enumerate(lines[1:], 2)]
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
