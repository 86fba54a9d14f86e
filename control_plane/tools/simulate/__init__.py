"""``streamplane simulate``: what-if on recorded history (docs/audit.md, "What-if").

- :mod:`.replay` (pure): the recorded cycles through ``decide`` again, with other settings;
- :mod:`.report` (pure): moves, load, unowned stream-seconds, time to recover, real beside
  simulated, and whether the replay reproduced the log;
- :mod:`.source`: reading the topics (through :mod:`projections.io`).
"""
