"""``python -m training.phantoms phantom generate ...``"""
import sys

from training.phantoms.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
