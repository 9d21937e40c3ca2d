"""parser_for: one parser per implemented venue, a clear error for the others."""

from __future__ import annotations

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import VENUES
from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.binance_spot import parse as spot
from buff_dataplane.feeds.binance_usdm import parse as usdm
from buff_dataplane.feeds.registry import parser_for, parser_venues


@pytest.mark.parametrize("module", [usdm, spot])
def test_implemented_venue_gives_its_module_parser(module):
    parser = parser_for(module.VENUE)
    assert parser is module.PARSER
    assert isinstance(parser, Parser)
    assert parser.venue == module.VENUE


def test_parser_venues_are_known_venues():
    assert parser_venues() == ("binance-spot", "binance-usdm")
    assert set(parser_venues()) <= set(VENUES)


@pytest.mark.parametrize("venue", sorted(set(VENUES) - {"binance-spot", "binance-usdm"}))
def test_known_venue_without_parser(venue):
    with pytest.raises(ValidationError, match=f"venue {venue} has no parser yet"):
        parser_for(venue)


@pytest.mark.parametrize("venue", ["binance", "BINANCE-USDM", "../x", ""])
def test_unknown_or_malformed_venue(venue):
    with pytest.raises(ValidationError, match="venue"):
        parser_for(venue)
