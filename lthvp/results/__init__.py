"""What a run is and what it produces: configs and presets, the record and its schema, metrics,
calibration, per-sample predictions, provenance, the results store and its administration."""
