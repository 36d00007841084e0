"""The public contract's import path: ``lthvp.prompting`` is :mod:`lthvp.adapt.prompting`."""

from lthvp.adapt.prompting import greedy_label_mapping  # noqa: F401
