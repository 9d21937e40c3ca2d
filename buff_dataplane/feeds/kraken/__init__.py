"""Kraken spot WebSocket (v2, and v1 recordings): pure parser in ``parse.py``."""
