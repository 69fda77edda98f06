"""Terminal client for tfa (built in the client issue)."""

__version__ = "0.1.0"
