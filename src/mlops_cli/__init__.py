"""mlops: field-tested ML-ops recipes as dependable commands."""

__version__ = "0.1.0"
