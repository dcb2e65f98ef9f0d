"""The service: OIP v2 inference, the management API and /metrics over a registry."""
