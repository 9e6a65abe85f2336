"""City services: one package per service, each declaring a SERVICE (see registry.py)."""
