"""The embedded S3 server's process: moto's server mode, without a log line per request.

``python -m mlservice.launcher.s3_server -H 127.0.0.1 -p PORT`` runs ``moto.server.main`` with werkzeug's
request logger at WARNING: moto's own server logs one line per S3 request at INFO, and a batch
job's multipart uploads and listings would grow ``logs/s3.log`` without bound (the API runs with
``--no-access-log`` for the same reason). Errors are still logged.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
