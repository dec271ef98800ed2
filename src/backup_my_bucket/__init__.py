"""backup-my-bucket: backups, restoration points and point-in-time restore for S3 buckets."""

__version__ = "0.1.0.dev0"
