import sys

from sedppl.io.cli import main

sys.exit(main())
