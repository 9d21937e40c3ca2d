"""Binance spot: ``parse.py`` decodes its messages."""
