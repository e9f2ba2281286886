"""`python -m watcher`, and the `watcher` command's entry point.

Extraction workers (multiprocessing's forkserver) start by importing the main
module again. Through the `watcher` script that was `watcher.cli` and everything
it imports, paid in CPU and memory by every worker at each start. Importing
this module costs nothing; the CLI is imported when `main()` runs.
"""

import sys


def main() -> int:
    from watcher.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
