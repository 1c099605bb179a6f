import pytest
import torch

from repro.data import shift


def _x(n=6, res=16):
    g = torch.Generator().manual_seed(0)
    return torch.randint(30, 220, (n, 3, res, res), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", shift.list_corruptions())
def test_shape_dtype_seeded_and_monotone(name):
    x = _x()
    outs = [shift.corrupt(x, name, s, seed=1) for s in shift.SEVERITIES]
    for o in outs:
        assert o.dtype == torch.uint8 and o.shape == x.shape
    assert torch.equal(outs[2], shift.corrupt(x, name, 3, seed=1))
    d = [float((o.float() - x.float()).abs().mean()) for o in outs]
    assert d[-1] > 0
    if name != "saturate":  # saturate goes desaturate -> oversaturate, not monotone in distance
        assert d[-1] >= d[0]


def test_corrupted_set_and_bad_input():
    x, y = _x(), torch.arange(6)
    xc, yc, cc = shift.corrupted_set(x, y, ["contrast", "gaussian_noise"], 5)
    assert len(xc) == 12 and torch.equal(yc[:6], y) and cc.tolist() == [0] * 6 + [1] * 6
    with pytest.raises(ValueError, match="severity"):
        shift.corrupt(x, "contrast", 6)
    with pytest.raises(ValueError, match="unknown corruption"):
        shift.corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="uint8"):
        shift.corrupt(x.float(), "contrast", 1)
