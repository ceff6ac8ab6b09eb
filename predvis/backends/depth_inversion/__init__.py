"""Recurrent convolutional autoencoders (B, BL, BT, BLT) that invert the depth order of occluded digits."""
from predvis.backends.depth_inversion import method  # noqa: F401 (registers depth_inversion)
