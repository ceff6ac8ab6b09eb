"""sleep: find the attractors that dreams fall into and unlearn them; measure before vs after.

The PVM blog observes that closed-loop dreams settle into fixed frames and proposes that sleep
could remove them by learning with a negative sign at the fixed point. Hopfield, Feinstein & Palmer
(1983, Nature 304:158) showed that such "unlearning" at the states a network relaxes to from random
starts suppresses spurious memories; Crick & Mitchison (1983, Nature 304:111) proposed it as the
function of REM sleep. Here it is a hypothesis to measure, for every stepping model that offers an
unlearning step (:class:`predvis.runtime.stepping.Unlearning`).

One cycle: dream from noise, grey and static real (training) frames (``prime`` copies of the start,
then each prediction is the next input, learning frozen); find where each dream settles
(a fixed point or a cycle, :mod:`predvis.probes.attractors`); apply one unlearning step at every
attractor found (:mod:`predvis.runtime.unlearning`); then, with ``--wake``, a normal learning pass of
``wake_epochs`` of an epoch through the method's own ``train_step`` on real training data.

Before the first and after the last cycle the same evaluation starts (fixed seed; noise, grey and
held-out real frames) are dreamt by the model, and the held-out one-step prediction error is
measured (docs/probes.md, section sleep, defines every number). The result is a NEW run directory
``<out>/<name>-sleep/<stamp>_<id>/`` with the source's config, the slept checkpoint in the format
``train`` writes (so predict / dream / lesion / occlude accept it), ``sleep.yaml`` (the settings),
``tables/sleep.md`` + ``tables/sleep.csv``, metrics, frames and GIFs. It is assembled in a hidden
folder and renamed into place; the source run is only read.
"""
from predvis.probes.sleep.command import PROBE, run_sleep
from predvis.probes.sleep.settings import PREDICTION_LIMIT, SleepOptions, SleepSettings

__all__ = ["PROBE", "PREDICTION_LIMIT", "SleepOptions", "SleepSettings", "run_sleep"]
