"""predvis: a command-line laboratory for predictive models of vision."""

__version__ = "0.1.0"
