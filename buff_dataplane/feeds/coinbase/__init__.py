"""Coinbase Exchange ws-feed (and Advanced Trade market data): pure parser in ``parse.py``."""
