"""Each of the 17 OOD unit-test recipes (N-App. G) checked for its defining property."""
import numpy as np
import pytest
import torch

from repro.data.unit_tests import ABBREV, STRIPE_COUNTS, UNIT_TESTS, make_unit_tests, unit_test

N, S = 24, 40


@pytest.fixture(scope="module")
def tests():
    return make_unit_tests(n=N, size=S, seed=3)


def f(x):  # uint8 tensor -> float [n, H, W, 3] in [0, 1]
    return x.permute(0, 2, 3, 1).numpy().astype(float) / 255


def test_seventeen_tests_shapes_dtypes(tests):
    assert len(UNIT_TESTS) == 17 and list(tests) == list(ABBREV)
    for k, x in tests.items():
        assert x.dtype == torch.uint8 and tuple(x.shape) == (N, 3, S, S), k


def test_default_is_400_images_and_any_size():
    assert len(unit_test("black")) == 400
    for size in (8, 64, 224):
        assert unit_test("smooth_noise", n=2, size=size).shape == (2, 3, size, size)


def test_seeded_and_independent_of_selection():
    a = make_unit_tests(n=5, size=16, seed=1)
    b = make_unit_tests(n=5, size=16, seed=1, names=["blobs", "uniform"])
    assert torch.equal(a["blobs"], b["blobs"]) and torch.equal(a["uniform"], b["uniform"])
    c = make_unit_tests(n=5, size=16, seed=2, names=["uniform"])
    assert not torch.equal(a["uniform"], c["uniform"])


def test_constant_images(tests):
    assert (tests["black"] == 0).all() and (tests["white"] == 255).all()
    g = f(tests["grey"])
    assert (g == g[:, :1, :1, :1]).all()  # one value for all channels and pixels
    m = f(tests["monochrome"])
    assert (m == m[:, :1, :1, :]).all()
    assert (m[:, 0, 0, :].std(axis=1) > 0).any()  # not grey: channels differ


def test_rademacher_and_uniform_values(tests):
    r = tests["rademacher"].unique().tolist()
    assert r == [0, 255]
    u = f(tests["uniform"])
    assert abs(u.mean() - 0.5) < 0.02 and u.min() < 0.01 and u.max() > 0.99


def test_gaussian_noise_centered_and_clipped(tests):
    g = f(tests["gaussian"])
    assert abs(np.median(g) - 0.5) < 0.01
    stds = g.reshape(N, -1).std(1)
    assert stds.min() > 0.03 and stds.max() < 0.5


def _runs(v):  # number of constant runs along axis 0 of an [L, 3] colour line
    return 1 + int((np.abs(np.diff(v, axis=0)).sum(1) > 0).sum())


def test_tricolour_three_equal_stripes(tests):
    for k in ("tricolour", "primary_tricolour"):
        for img in f(tests[k]):
            rows_const = (img == img[:, :1]).all()
            cols_const = (img == img[:1, :]).all()
            assert rows_const or cols_const
            line = img[:, 0] if rows_const else img[0, :]
            bounds = [0] + [i + 1 for i in np.flatnonzero(np.abs(np.diff(line, axis=0)).sum(1) > 0)] + [S]
            if k == "tricolour":  # independent uniform colours: 3 distinct stripes of equal width
                assert _runs(line) == 3 and max(np.diff(bounds)) - min(np.diff(bounds)) <= 1
            else:  # primary colours may repeat: boundaries are a subset of the equal-thirds ones
                assert set(bounds) <= {0, 14, 27, 40}
    assert set(tests["primary_tricolour"].unique().tolist()) <= {0, 255}


def test_stripes_counts(tests):
    for k, axis in (("hstripes", "h"), ("vstripes", "v")):
        for img in f(tests[k]):
            if axis == "h":
                assert (img == img[:, :1]).all()
                line = img[:, 0]
            else:
                assert (img == img[:1, :]).all()
                line = img[0, :]
            assert _runs(line) in STRIPE_COUNTS  # adjacent colours coincide with prob. ~0


def test_stripe_count_exact_at_large_size():
    x = f(unit_test("hstripes", n=20, size=200, seed=5))
    counts = {_runs(im[:, 0]) for im in x}
    assert counts <= set(STRIPE_COUNTS) and len(counts) >= 3


def test_smooth_noise_rescaling(tests):
    for img in f(tests["smooth_noise"]):
        assert img.min() == 0.0 and img.max() == 1.0  # global min/max
    for img in f(tests["smooth_noise_plus"]):
        assert (img.min(axis=(0, 1)) == 0).all() and (img.max(axis=(0, 1)) == 1).all()  # per channel


def test_smooth_noise_is_smooth(tests):
    sm, un = f(tests["smooth_noise"]), f(tests["uniform"])
    tv = lambda a: np.abs(np.diff(a, axis=1)).mean()
    assert tv(sm) < tv(un) / 3


def test_smooth_colour_percentiles():
    # at the reference size the recipe is verbatim; check c -/+ delta at the 2.5/97.5 percentiles
    from repro.data.unit_tests import _smooth

    rng = np.random.default_rng(0)
    imgs = _smooth(6, 64, rng, 64 / 400, "colour")
    rng = np.random.default_rng(0)
    for img in imgs:
        _ = rng.choice((10, 15, 25, 40, 60, 85)), rng.random((64, 64, 3))
        delta, c = rng.uniform(0.1, 0.3), rng.random(3)
        lo, hi = np.percentile(img, [2.5, 97.5], axis=(0, 1))
        np.testing.assert_allclose(lo, c - delta, atol=1e-9)
        np.testing.assert_allclose(hi, c + delta, atol=1e-9)
    x = f(unit_test("smooth_colour", n=8, size=32))
    assert x.min() >= 0 and x.max() <= 1


def test_blobs_threshold(tests):
    v = np.unique(f(tests["blobs"]))
    assert v[0] == 0.0 and (v[1:] >= 0.75 - 1 / 255).all()


def test_pixel_permutation_keeps_colour_triplets():
    src = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    x = unit_test("pixel_perm", n=6, size=16, source_images=src)
    pix = lambda im: sorted(map(tuple, im.permute(1, 2, 0).reshape(-1, 3).tolist()))
    src_sets = [pix(s) for s in src]
    for im in x:
        assert pix(im) in src_sets  # the same RGB triplets, reordered
    sm = unit_test("smooth_pixel_perm", n=4, size=16, source_images=src)
    assert sm.shape == (4, 3, 16, 16)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown unit test"):
        unit_test("stripes")
    with pytest.raises(ValueError, match="source_images"):
        unit_test("pixel_perm", n=2, size=8, source_images=torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="n >= 1"):
        unit_test("black", n=0)


def test_canonical_names_of_paper_tables_and_archive_folders():
    from repro.data.unit_tests import canonical_name

    for key, ab in ABBREV.items():
        assert canonical_name(key) == key and canonical_name(ab) == key and canonical_name(ab.lower()) == key
    # N-Tab.2 column names and the NINCO archive's folder names
    assert [canonical_name(n) for n in ("bla", "whi", "gre", "hor", "SmN", "Rad", "mon")] == \
        ["black", "white", "grey", "hstripes", "smooth_noise", "rademacher", "monochrome"]
    assert canonical_name("P/Tri") == "primary_tricolour" and canonical_name("SmN2") == "smooth_noise_plus"
    assert canonical_name("unknown_test") == "unknown_test"
