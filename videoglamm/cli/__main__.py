import sys

from videoglamm.cli import main

sys.exit(main())
