"""Running a (stand-in) ``mlservice.launcher.up.Platform`` in a test process."""

from __future__ import annotations

import signal
import threading


def run_then_stop(platform, stop_after_s: float) -> int:
    """``platform.run()``, asked to stop ``stop_after_s`` after it is ready; its exit code. The
    signal handlers ``run()`` installs are put back afterwards (pytest's own)."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def on_ready() -> None:
        timer = threading.Timer(stop_after_s, platform.request_stop)
        timer.daemon = True
        timer.start()

    try:
        return platform.run(on_ready)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
