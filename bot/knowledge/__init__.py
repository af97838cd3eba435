"""The bundled knowledge pack (``pytorch_foundation.toml``)."""
