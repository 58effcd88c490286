"""``python -m tassn fit|validate|test|predict|report …``."""

from tassn.cli import main

if __name__ == "__main__":
    main()
