"""The parser of each venue: :func:`parser_for`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.binance_spot import parse as binance_spot
from buff_dataplane.feeds.binance_usdm import parse as binance_usdm
from buff_dataplane.feeds.bybit_linear import parse as bybit_linear
from buff_dataplane.feeds.coinbase import parse as coinbase
from buff_dataplane.feeds.kraken import parse as kraken
from buff_dataplane.feeds.okx_swap import parse as okx_swap

_PARSERS: Final[Mapping[str, Parser]] = {
    binance_spot.VENUE: binance_spot.PARSER,
    binance_usdm.VENUE: binance_usdm.PARSER,
    bybit_linear.VENUE: bybit_linear.PARSER,
    coinbase.VENUE: coinbase.PARSER,
    kraken.VENUE: kraken.PARSER,
    okx_swap.VENUE: okx_swap.PARSER,
}


def parser_for(venue: str) -> Parser:
    """The parser of ``venue``; ValidationError for an unknown venue or one without a parser."""
    validate_venue(venue)
    try:
        return _PARSERS[venue]
    except KeyError:
        raise ValidationError(
            f"venue {venue} has no parser yet: parsers exist for {', '.join(sorted(_PARSERS))}"
        ) from None


def parser_venues() -> tuple[str, ...]:
    """The venues that have a parser, sorted."""
    return tuple(sorted(_PARSERS))
