"""Image classifiers: the digit classifier and image-folder classifiers that deepdream and its attacks read."""
from predvis.backends.classifier import method  # noqa: F401 (registers classifier)
