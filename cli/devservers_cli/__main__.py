"""``python -m devservers_cli`` is ``devctl``."""

from .main import main

main()
