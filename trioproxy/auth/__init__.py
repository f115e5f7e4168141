"""Who may pass: the JupyterHub OAuth login and the passage a request gets to the app."""
