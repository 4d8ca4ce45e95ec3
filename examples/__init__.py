"""Clients, sample audio and the guided tour that drive the services."""
