"""The ``coopnet`` command's entry point, kept apart from ``node.cli`` on purpose.

Verify workers start through a fork server, and each re-runs the main script of the process that
started them. The console script imports only this module, so a worker stays as small as the
protocol it needs (about 20 MB) instead of importing aiohttp, click and rich (about 48 MB).
"""

from __future__ import annotations


def main() -> None:
    from node.cli import main as cli_main

    cli_main()
