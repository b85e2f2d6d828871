"""`skillforge` console script: the app with every command registered."""

from cli import (  # noqa: F401  (importing a command module registers it)
    evaluate,
    export,
    finetune,
    hierarchical,
    library,
    pretrain,
    serve,
    server,
    sweep,
    ui,
)
from cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
