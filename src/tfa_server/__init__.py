"""tfa account server: accounts, TOTP two-factor authentication and policy over HTTP."""

__version__ = "0.1.0"
