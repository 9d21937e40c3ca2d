"""Pipeline: wiring of feeds and storage (import, and later capture, canonicalize, replay)."""
