"""The Predictive Vision Model: a hierarchy of small predictive units with lateral and feedback context."""
from predvis.backends.pvm import method  # noqa: F401 (registers pvm)
