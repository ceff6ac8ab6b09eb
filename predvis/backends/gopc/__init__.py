"""GOPC-1 / VAE-1 (gradient-origin predictive coding and its VAE baseline) and the hierarchical GOPC-2."""
from predvis.backends.gopc import method, hierarchy_method  # noqa: F401 (registers gopc, gopc2)
