"""parser_for: one parser per venue, a clear error for anything else."""

from __future__ import annotations

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import VENUES
from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.binance_spot import parse as spot
from buff_dataplane.feeds.binance_usdm import parse as usdm
from buff_dataplane.feeds.bybit_linear import parse as bybit
from buff_dataplane.feeds.coinbase import parse as coinbase
from buff_dataplane.feeds.kraken import parse as kraken
from buff_dataplane.feeds.okx_swap import parse as okx
from buff_dataplane.feeds.registry import parser_for, parser_venues

MODULES = [usdm, spot, bybit, okx, coinbase, kraken]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.VENUE)
def test_implemented_venue_gives_its_module_parser(module):
    parser = parser_for(module.VENUE)
    assert parser is module.PARSER
    assert isinstance(parser, Parser)
    assert parser.venue == module.VENUE


def test_every_known_venue_has_a_parser():
    assert parser_venues() == tuple(sorted(VENUES))
    assert {m.VENUE for m in MODULES} == set(VENUES)


@pytest.mark.parametrize("venue", ["binance", "BINANCE-USDM", "../x", "", "bybit-spot"])
def test_unknown_or_malformed_venue(venue):
    with pytest.raises(ValidationError, match="venue"):
        parser_for(venue)


def test_a_venue_id_the_product_knows_but_no_parser_serves_is_named(monkeypatch):
    from buff_dataplane.feeds import registry

    monkeypatch.setattr(registry, "_PARSERS", {usdm.VENUE: usdm.PARSER})
    with pytest.raises(ValidationError, match="venue kraken has no parser yet"):
        parser_for("kraken")
