"""The storage layer: the ObjectStore seam and its implementations.

Nothing is imported here: ``storage.s3.redact`` and ``storage.s3.S3Config`` load at start-up
without the stores (see storage/s3/__init__.py); import the implementations from their modules
(``storage.memory``, ``storage.s3``).
"""
