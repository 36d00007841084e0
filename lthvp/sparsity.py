"""The public contract's import path: ``lthvp.sparsity`` re-exports pruning
(:mod:`lthvp.tickets.sparsity`) and ticket loading (:mod:`lthvp.tickets.ticket_formats`)."""

from lthvp.tickets.sparsity import global_magnitude_prune, remaining_fraction  # noqa: F401
from lthvp.tickets.ticket_formats import load_ticket  # noqa: F401
