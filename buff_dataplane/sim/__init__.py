"""The exchange simulator: a seeded trade tape and the venues' message encodings.

Used by tests, benchmarks, golden fixtures and the demo; nothing in the product imports it.
"""
