"""Snapshot indexes and the catalogs that store them."""
