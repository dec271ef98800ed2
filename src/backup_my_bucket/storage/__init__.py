"""The storage layer: the ObjectStore seam and its implementations."""

from .memory import MemoryStore
from .protocol import ObjectStore

__all__ = ["MemoryStore", "ObjectStore"]
