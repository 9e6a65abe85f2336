"""AgileCity: an open, frugal smart-city data platform built on an NGSI-LD context broker."""

__version__ = "0.1.0"
