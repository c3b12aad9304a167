"""Entry point: ``python -m engine.sim [SGLang launch_server flags] [--sim-* flags]``."""

import sys

from engine.sim.cli import main

sys.exit(main())
