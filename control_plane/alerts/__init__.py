"""The pure alert engine: rules over the folded state and metric series, learned thresholds."""
