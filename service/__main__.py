"""`python -m service`: the production entry point (service/server/launcher.py)."""

import sys

from service.server.launcher import main

if __name__ == "__main__":
    sys.exit(main())
