"""``servicegrid ui``: start the Streamlit app (bound to 127.0.0.1 unless --host says otherwise)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import ui

MAX_UPLOAD_MB = 20


def app_path() -> Path:
    """The installed app.py (next to the ``ui`` package)."""
    return Path(ui.__file__).resolve().parents[1] / "app.py"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="start the ServiceGrid Studio web app",
                       description="Start the Streamlit app. It listens on 127.0.0.1 (this machine only) "
                                   "unless --host names another address.")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the app to the network)")
    p.set_defaults(handler=run)


def command(args: argparse.Namespace) -> list[str]:
    """The streamlit command line this subcommand runs."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.headless", "true", "--server.maxUploadSize", str(MAX_UPLOAD_MB),
            "--browser.gatherUsageStats", "false",
            "--runner.postScriptGC", "false"]  # why: .streamlit/config.toml


def run(args: argparse.Namespace) -> int:
    path = app_path()
    if not path.is_file():
        print(f"servicegrid ui: the app is missing at {path}; reinstall servicegrid", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"servicegrid ui: listening on {args.host}: anyone who can reach this address can use the app",
              file=sys.stderr)
    try:
        return subprocess.call(command(args), cwd=path.parent, env=os.environ.copy())
    except KeyboardInterrupt:
        return 130
