"""``python -m shard_operator.server`` = ``shard-server``."""

from .main import main

if __name__ == "__main__":
    main()
