"""Everything that adapts hypercorn: the accept loop, the per-connection server, strict request heads,
websocket streams."""
