"""Step two PVMs through the same frames and compare them at every step (shared by the PVM path tests)."""
from __future__ import annotations

import torch


def step_pair(ref, other, frames: torch.Tensor, streams: int, pred_atol: float, err_atol: float):
    """Fresh states of ``streams`` streams, one step per frame (frames: (T, streams, C, H, W)); every
    step's prediction and layer errors of ``other`` within the absolute tolerances of ``ref``'s.
    Returns the two final states (ref's, other's)."""
    s_ref, s_other = ref.init_state(streams), other.init_state(streams)
    for f in frames:
        o_ref, o_other = ref.step(f, s_ref), other.step(f, s_other)
        s_ref, s_other = o_ref.state, o_other.state
        torch.testing.assert_close(o_other.prediction, o_ref.prediction, rtol=0, atol=pred_atol)
        for key, e in o_ref.layer_errors.items():
            torch.testing.assert_close(o_other.layer_errors[key], e, rtol=0, atol=err_atol)
    return s_ref, s_other
