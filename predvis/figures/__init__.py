"""Figures a researcher reads at 100 % zoom: labelled frame grids (PNG and GIF) and plots.

One module per figure kind; the probes and the training loop call them:

- ``predict``: ground truth / prior prediction / |error| / posterior over the frames of a sample;
- ``stepping``: dream, occlude and lesion frames of a stepping model (one row per panel type);
- ``deepdream``: captions on deepdream frames;
- ``sleep``: one dream before sleep / after sleep / wake only, settling steps boxed;
- ``depth_invert``: input / target / output at every unrolled step per scene;
- ``training``: ``plots/loss.png`` from ``metrics/train.csv``.

``canvas`` draws image grids in pixels (fast, deterministic); ``plots`` holds the matplotlib
(Agg) set-up and PNG writer for line plots.
"""
