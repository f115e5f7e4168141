"""trioproxy's own endpoints (owner's controls, metrics, health, the OAuth callback, on Quart-Trio)
and `trioproxy doctor`."""
