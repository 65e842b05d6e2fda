"""The jointinv command line with a slow gravity engine, for the interrupt tests.

Every gravity forward call first sleeps ``JOINTINV_TEST_GRAVITY_DELAY`` seconds
(default 0.2), so a gravity-only inversion that takes a second lasts long
enough to be interrupted midway, and a signal often arrives inside an engine
call, as it does in pyGIMLi's long ones. Run as a script:
``python tests/slow_gravity_cli.py run config.yaml``. The worker processes of
``jointinv batch`` (spawned) import this file again, so they are slow too.
"""

import os
import time

from jointinv.engines.gravity import GravitySimulation

DELAY = float(os.environ.get("JOINTINV_TEST_GRAVITY_DELAY", "0.2"))
_forward = GravitySimulation.forward


def _slow_forward(self, density_contrast):
    time.sleep(DELAY)
    return _forward(self, density_contrast)


GravitySimulation.forward = _slow_forward

if __name__ == "__main__":
    from jointinv.cli import main

    main()
