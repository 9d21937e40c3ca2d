"""Binance USD-M futures (perpetuals): ``parse.py`` decodes its messages."""
