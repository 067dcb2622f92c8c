"""hull: a Docker-compatible container engine written in Python.

Kept empty on purpose: every program imports this package first, so nothing here may cost start-up time.
"""

__version__ = "0.1.0"
