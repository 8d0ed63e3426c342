import sys

from client_gen.cli import main

sys.exit(main())
