"""The public contract's import path (docs: DESIGN.md section 2), kept since the modules moved
into subpackages: ``lthvp.metrics`` is :mod:`lthvp.results.metrics`."""

from lthvp.results.metrics import expected_calibration_error, reliability_table  # noqa: F401
