"""`skillforge` console script: the app with every command registered."""

from cli import evaluate, export, hierarchical, library, pretrain, ui  # noqa: F401  (importing a command module registers it)
from cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
