"""trioproxy: serve any web app as a JupyterHub single-user server, on Trio."""

from ._run import run
from ._settings import Settings
from ._version import __version__

__all__ = ["Settings", "__version__", "run"]
