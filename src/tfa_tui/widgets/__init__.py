"""Reusable widgets of the tfa terminal app, each with its own DEFAULT_CSS."""
