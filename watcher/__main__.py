import sys

from watcher.cli import main

# Guarded: extraction workers (multiprocessing) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
