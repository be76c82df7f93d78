import sys

from automl_core.cli import main

sys.exit(main())
