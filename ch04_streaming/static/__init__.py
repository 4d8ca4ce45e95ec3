"""Browser client files served at `/`."""
