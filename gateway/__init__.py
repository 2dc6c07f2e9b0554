"""Gateway: an API-gateway reverse proxy that enforces JWT access tokens and issues them."""

__version__ = "0.1.0"
