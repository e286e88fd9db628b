"""Public test helpers: synthetic exposures with known truth, matching reference sets, CRDS caches."""
