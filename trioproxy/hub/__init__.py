"""JupyterHub's API: token lookups (and their cache), OAuth exchanges, activity reports."""
