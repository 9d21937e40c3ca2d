"""Bybit v5 public linear (USDT/USDC perpetuals): pure parser in ``parse.py``."""
