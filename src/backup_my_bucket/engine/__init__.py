"""Engines: each a pure plan and an execute step over the storage seam."""
