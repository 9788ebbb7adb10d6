import sys

from sizeseg.cli import main

sys.exit(main())
