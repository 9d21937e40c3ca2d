"""Feeds: one folder per venue, each with a pure ``parse.py``.

A parser turns one received message (its exact bytes) into a
:class:`~buff_dataplane.feeds.base.Parsed` summary: which stream it belongs to, its exchange
time and, for a trade message, every trade in it. Parsers do no I/O, read no clock and
refuse anything out of contract with :class:`~buff_dataplane.core.errors.PayloadRejected`.
:func:`buff_dataplane.feeds.registry.parser_for` gives the parser of a venue; venue-neutral
pieces (exact money and time, trade batches) are in :mod:`buff_dataplane.feeds.common`.
"""
