"""``python -m training train CONFIG`` — the form torchrun needs (``torchrun ... -m training``)."""
import sys

from training.cli import main

if __name__ == "__main__":
    sys.exit(main())
