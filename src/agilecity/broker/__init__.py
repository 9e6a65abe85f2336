"""The NGSI-LD context broker as domain code: no HTTP, no SQL."""
