"""``python -m damagemap``: the same command line as ``damagemap``."""

from damagemap.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the CLI tests
    main()
