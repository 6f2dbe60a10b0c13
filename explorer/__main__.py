"""``python -m explorer``: the ``match-mapper`` command line."""

from explorer.cli import console

if __name__ == "__main__":
    console()
