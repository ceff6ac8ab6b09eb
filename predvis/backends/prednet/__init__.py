"""PredNet (Lotter, Kreiman & Cox, ICLR 2017): config, model, stepper and training method."""
from predvis.backends.prednet import method  # noqa: F401 (registers prednet)
