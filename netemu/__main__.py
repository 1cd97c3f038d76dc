import sys

from netemu.cli.main import main

sys.exit(main())
