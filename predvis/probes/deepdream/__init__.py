"""deepdream: feature dreams, zoom videos, class targets and adversarial examples (docs/deepdream.md).

objectives.py   what is maximised (layer / channel / unit / class / guide, weighted sums)
transforms.py   jitter roll, octave resize, centre zoom, blur, total variation
layers.py       forward hooks by name; the forward stops at the deepest hooked layer
engine.py       the recipe (Dreamer), zoom video with a layer schedule, frame-by-frame video
attacks.py      PGD (L-inf) and patch attacks with exact projections, attack metrics
sources.py      torchvision / importable models, local weights, images
targets.py      model.source -> the module to dream on (predvis runs included)
settings.py     the schema of experiments/deepdream.yaml
command.py      `predvis deepdream`: modes still / zoom / video, outputs into a run directory
adversarial.py  mode attack: tables/adversarial.md and the grid image
"""
