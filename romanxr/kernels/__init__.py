"""Numeric kernels on plain ndarrays (numpy/numba); no xarray in here."""
