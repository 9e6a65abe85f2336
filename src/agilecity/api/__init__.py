"""HTTP adapters, one module per standard they speak."""
