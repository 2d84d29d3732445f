"""``python -m musegnn_core`` and the ``musegnn`` console script."""

import sys


def main() -> int:
    # Threads first: the OpenMP runtime reads its settings once, when torch loads it.
    from .threads import configure_threads

    configure_threads()
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
