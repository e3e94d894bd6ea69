"""`python -m townhall`: the `townhall` command, for when its script is not on the PATH."""

from townhall.cli import app

if __name__ == "__main__":
    app(prog_name="townhall")
