"""The generated world: shapes, seeding, class sizes, contamination flags, bad input."""
import numpy as np
import pytest
import torch

from repro.core.cache import fingerprint
from repro.data.world import (FAR_TEXTURES, ID_SHAPES, NINCO_COUNTS, OOD_SHAPES, ImageSet, make_popular,
                              make_world, render_images)

SMALL = dict(n_train_per_class=6, n_val_per_class=2, n_test_per_class=3, ood_scale=0.1,
             n_near_per_class=2, n_far_per_class=2, n_popular=40)


@pytest.fixture(scope="module")
def world():
    return make_world(seed=0, **SMALL)


def test_splits_shapes_and_types(world):
    assert world.num_classes == 10 and world.class_names == ID_SHAPES
    for s, n in ((world.id_train, 6), (world.id_val, 2), (world.id_test, 3)):
        assert s.x.dtype == torch.uint8 and s.x.shape == (10 * n, 3, 32, 32)
        assert s.y.dtype == torch.int64 and torch.bincount(s.y).tolist() == [n] * 10


def test_ood_sets_disjoint_from_id(world):
    assert len(OOD_SHAPES) >= 20 and not set(OOD_SHAPES) & set(ID_SHAPES)
    ninco = world.ood["ninco"]
    assert ninco.class_names == OOD_SHAPES[:24] and not set(ninco.class_names) & set(ID_SHAPES)
    assert world.ood["far"].class_names == FAR_TEXTURES
    assert world.ood["near"].flags is None


def test_ninco_like_uneven_class_sizes():
    w = make_world(seed=1, n_train_per_class=1, n_val_per_class=1, n_test_per_class=1, ood_scale=1.0,
                   n_near_per_class=0, n_far_per_class=0, n_popular=0)
    counts = torch.bincount(w.ood["ninco"].y).numpy()
    assert counts.min() >= 31 and counts.max() <= 176 and len(set(counts)) > 3
    assert np.median(counts) == 100 and set(counts) <= set(NINCO_COUNTS)


def test_seeded_bit_identical_and_seed_sensitive(world):
    again = make_world(seed=0, **SMALL)
    for a, b in ((world.id_train, again.id_train), (world.ood["ninco"], again.ood["ninco"]),
                 (world.ood["pop_places"], again.ood["pop_places"])):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert fingerprint(world) == fingerprint(again)
    other = make_world(seed=1, **SMALL)
    assert not torch.equal(world.id_train.x, other.id_train.x)
    assert fingerprint(world) != fingerprint(other)


def test_split_sizes_independent(world):
    # changing the test size must not change the training images (one generator per split)
    w2 = make_world(seed=0, **{**SMALL, "n_test_per_class": 5})
    assert torch.equal(world.id_train.x, w2.id_train.x)


def test_popular_contamination_fraction_and_flags():
    pop = make_popular("places", n=200, p=0.3, incidental_share=0.5, seed=3)
    flags = pop.flags.numpy()
    assert (flags > 0).sum() == 60 and (flags == 1).sum() == 30 and (flags == 2).sum() == 30
    clean = make_popular("places", n=50, p=0.0, seed=3)
    assert (clean.flags == 0).all()
    with pytest.raises(ValueError, match="p must lie"):
        make_popular("places", n=10, p=1.5)


def test_cleaned_versions(world):
    for name in ("places", "species", "textures", "inat_plants"):
        pop, clean = world.ood[f"pop_{name}"], world.ood[f"pop_{name}_clean"]
        assert len(clean) == int((pop.flags == 0).sum()) and (clean.flags == 0).all()


def test_contamination_actually_contains_id_object():
    # categorical contamination draws an ID object; the same seed without contamination does not
    from repro.data import world as W

    shapes = ["disk"] * 4
    a = render_images(shapes, 32, seed=0, incidental=[None] * 4)
    b = render_images(shapes, 32, seed=0, incidental=["square"] * 4)
    assert not torch.equal(a, b)


def test_resolution_parameter():
    for res in (64, 224):
        x = render_images(["disk", "grating", None], res, seed=0)
        assert x.shape == (3, 3, res, res)


def test_render_draws_the_object():
    plain = render_images([None] * 8, 32, seed=0, occlusion_p=0.0, noise=(0, 0))
    disk = render_images(["disk"] * 8, 32, seed=0, occlusion_p=0.0, noise=(0, 0))
    assert (plain.float() - disk.float()).abs().mean() > 5


def test_bad_input():
    with pytest.raises(ValueError, match="n_classes"):
        make_world(n_classes=50)
    with pytest.raises(ValueError, match="n_train_per_class"):
        make_world(n_train_per_class=0)
    with pytest.raises(ValueError, match="unknown shape"):
        render_images(["unicorn"], 32)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.int64), ["a"], "bad")
    with pytest.raises(ValueError, match="int64"):
        ImageSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), ["a"], "bad")


def test_subset_and_per_class(world):
    s = world.id_test.subset(world.id_test.y == 0)
    assert len(s) == 3 and s.per_class()["disk"] == 3


def test_first_per_class(world):
    from repro.data.world import first_per_class

    x, t = first_per_class(world.id_test, 2)
    assert x.shape == (20, 3, 32, 32) and t == [c for c in ID_SHAPES for _ in range(2)]
    idx = [int(torch.nonzero(world.id_test.y == 0).flatten()[0])]
    assert torch.equal(x[0], world.id_test.x[idx[0]])
    x1, t1 = world.ood["ninco"].first_per_class()
    assert len(x1) == len(world.ood["ninco"].class_names) and t1 == world.ood["ninco"].class_names
    with pytest.raises(ValueError, match="k must be"):
        first_per_class(world.id_test, 0)


def test_subset_keeps_per_image_files_and_pixel_fingerprint_is_memoised():
    x = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 8, 8).contiguous()
    s = ImageSet(x, torch.tensor([0, 1, 0, 1]), ["a", "b"], "s", meta={"files": ["f0", "f1", "f2", "f3"]})
    assert s.subset(s.y == 1).meta["files"] == ["f1", "f3"]
    assert s.pixels_fingerprint() == fingerprint(x) and s._xfp == fingerprint(x)


def test_loaded_world_fingerprint_and_no_popular(world):
    from repro.data.world import World

    w = World(world.id_train, world.id_val, world.id_test, {"ninco": world.ood["ninco"]}, 0, 32, {},
              unit_tests={"black": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)}, source="imagefolder")
    w2 = World(world.id_train, world.id_val, world.id_test, {"ninco": world.ood["near"]}, 0, 32, {},
               unit_tests=w.unit_tests, source="imagefolder")
    # a loaded world is fingerprinted by content (not by generator params, which it has none of)
    assert fingerprint(w) != fingerprint(w2) and fingerprint(w) == fingerprint(w)
    with pytest.raises(ValueError, match="only in the generated world"):
        w.popular("x", n=10, p=0.3)


def test_default_popular_sources_are_not_near_ood():
    from repro.data.world import GENERIC_OOD_SOURCES, NEAR_SHAPES

    s = make_popular("study", n=20, p=0.5, seed=0)
    assert s.class_names == GENERIC_OOD_SOURCES and not set(s.class_names) & set(NEAR_SHAPES)
