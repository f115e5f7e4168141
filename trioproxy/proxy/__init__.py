"""Forwarding to the app: HTTP, websockets, and the gateway that waits for the app."""
