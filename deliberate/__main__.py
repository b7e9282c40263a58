"""``python -m deliberate``: the same as the ``deliberate`` command."""

from deliberate.cli import main

if __name__ == "__main__":
    main()
