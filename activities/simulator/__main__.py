"""``python -m activities.simulator --port 8090 --latency 20 --fail-rate 0.1 ...``"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from activities.simulator.app import serve
from activities.simulator.engine import SimulatorConfig


def rate_per_minute(text: str) -> int:
    """``120``, ``120/min`` or ``120/m``: prediction creates allowed per minute."""
    number, _, unit = text.partition("/")
    if unit not in ("", "m", "min", "minute") or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"expected N or N/min with N >= 1, not {text!r}")
    return int(number)


def parser() -> argparse.ArgumentParser:
    defaults = SimulatorConfig()
    cli = argparse.ArgumentParser(
        prog="python -m activities.simulator",
        description="A Replicate-protocol HTTP simulator with latency and fault knobs.",
    )
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--port", type=int, default=8090)
    cli.add_argument("--latency", type=float, default=defaults.latency, help="seconds")
    cli.add_argument("--jitter", type=float, default=defaults.jitter, help="± seconds")
    for knob in ("fail", "refuse", "hang", "error", "malformed"):
        cli.add_argument(f"--{knob}-rate", type=float, default=0.0, metavar="P")
    cli.add_argument("--rate-limit", type=rate_per_minute, metavar="N/min")
    cli.add_argument("--seed", type=int)
    cli.add_argument(
        "--no-render",
        dest="render",
        action="store_false",
        help="serve a tiny prepared file instead of rendering with FFmpeg",
    )
    cli.add_argument("--data-dir", type=Path)
    cli.add_argument("--log-level", default="info")
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    config = SimulatorConfig(
        latency=args.latency,
        jitter=args.jitter,
        fail_rate=args.fail_rate,
        refuse_rate=args.refuse_rate,
        hang_rate=args.hang_rate,
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        rate_limit=args.rate_limit,
        seed=args.seed,
        render=args.render,
        data_dir=args.data_dir,
    )
    serve(config, args.host, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
