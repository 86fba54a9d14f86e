"""``python -m control_plane.api.dashboard``: the dashboard served alone (see :mod:`.server`)."""

import sys

from control_plane.api.dashboard.server import main

sys.exit(main())
