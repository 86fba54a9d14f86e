"""``python -m projections.projector``: the Faust projector with settings from the environment."""

from projections.projector.run import main

raise SystemExit(main())
