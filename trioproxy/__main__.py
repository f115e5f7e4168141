"""``python -m trioproxy``."""

from trioproxy._cli import main

main()
