"""OKX v5 public, perpetual swaps (SWAP instruments): pure parser in ``parse.py``."""
