"""Device ingestion: the gateway (MQTT/HTTP, UltraLight/JSON) and the demo-town simulator."""
