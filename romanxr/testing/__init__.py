"""Public test helpers: synthetic exposures with known truth, reference sets, CRDS caches."""
