"""``python -m trioproxy``."""

from trioproxy.cli import main

main()
