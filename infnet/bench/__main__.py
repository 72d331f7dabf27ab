"""``python -m infnet.bench <quality|hypergrad|data|tune|decode> [options]``."""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    commands = {
        "quality": "infnet.bench.quality",
        "hypergrad": "infnet.bench.hypergrad",
        "data": "infnet.bench.data",
        "tune": "infnet.bench.tune",
        "decode": "infnet.bench.decode",
    }
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python -m infnet.bench <{'|'.join(commands)}> [options]  (each has --help)")

    importlib.import_module(commands[sys.argv[1]]).main(sys.argv[2:])


if __name__ == "__main__":
    main()
