"""`python -m app [--host 127.0.0.1 --port 7860]`: start the web app."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app", description="GradMetaNet INR editor (Gradio)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args(argv)
    from .ui import launch

    launch(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
