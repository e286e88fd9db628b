"""romanxr's version, at the bottom of the import graph (modules that record it import this)."""

__version__ = "0.1.0"
