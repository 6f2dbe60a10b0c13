"""What a newcomer trips over (issue 14): TF padding spellings, ZigZag files given to ``archs.load``,
a missing C compiler."""

from __future__ import annotations

import pytest

import mapper
from archs.dims import LoopDim as D


@pytest.mark.parametrize("spelling", ["SAME", "Same", "same"])
def test_conv2d_accepts_tf_same_in_any_case(spelling):
    # TF "SAME", stride 2 on 8x8, 3x3 kernel: output 4x4, total pad (4-1)*2+3-8 = 1 per axis, all at the end
    layer = mapper.conv2d("c", input_size=(8, 8), in_channels=4, out_channels=8, kernel=3, stride=2, padding=spelling)
    assert layer.padding == (0, 1, 0, 1) and (layer.sizes[D.OY], layer.sizes[D.OX]) == (4, 4)


@pytest.mark.parametrize("build", [
    lambda p: mapper.conv2d("c", input_size=(8, 8), in_channels=4, out_channels=8, kernel=3, padding=p),
    lambda p: mapper.depthwise("c", input_size=(8, 8), channels=4, kernel=3, padding=p),
    lambda p: mapper.pool("c", input_size=(8, 8), channels=4, kernel=2, padding=p),
])
def test_every_builder_accepts_tf_valid_and_rejects_unknown_padding(build):
    assert build("VALID").padding == (0, 0, 0, 0)
    for bad, shown in (("full", "'full'"), (True, "True"), ((1, 2), "(1, 2)"), ((0, 0, 0, -1), "(0, 0, 0, -1)"),
                       ("x" * 500, "'xxxx")):
        with pytest.raises(mapper.LayerError) as info:
            build(bad)
        message = str(info.value)
        assert message.startswith("layer 'c': padding: expected 'same' or 'valid' (any case") and shown in message
        assert "int >= 0 or 4 ints >= 0" in message and len(message) < 250  # the quoted value is truncated
