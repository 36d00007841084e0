"""From stored results to claims: aggregation, paired effects with Holm correction, generated findings."""
