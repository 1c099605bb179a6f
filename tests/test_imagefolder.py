"""Full-profile loaders tested offline on a tiny tree in NINCO's layout."""
import numpy as np
import pytest
import torch
from PIL import Image

from repro.data.imagefolder import load_imagefolder, load_ninco


def _write(root, classes, n=3, size=(40, 30)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")


@pytest.fixture
def ninco_tree(tmp_path):
    root = tmp_path / "NINCO"
    _write(root / "NINCO_OOD_classes", ["caracal", "donuts"], n=3)
    _write(root / "NINCO_OOD_unit_tests", ["black", "blobs"], n=2)
    _write(root / "NINCO_popular_datasets_subsamples", ["places", "species"], n=2)
    return root


def test_load_imagefolder(ninco_tree):
    s = load_imagefolder(ninco_tree / "NINCO_OOD_classes", resolution=16)
    assert s.x.shape == (6, 3, 16, 16) and s.x.dtype == torch.uint8
    assert s.class_names == ["caracal", "donuts"] and s.y.tolist() == [0, 0, 0, 1, 1, 1]
    sub = load_imagefolder(ninco_tree / "NINCO_OOD_classes", resolution=16, max_per_class=2)
    assert len(sub) == 4


def test_load_ninco_layout(ninco_tree):
    d = load_ninco(ninco_tree, resolution=24)
    assert len(d["ninco"]) == 6 and set(d["unit_tests"]) == {"black", "blobs"}
    assert d["unit_tests"]["black"].shape == (2, 3, 24, 24)
    assert d["popular"]["places"].class_names == ["places"]


def test_constant_image_stays_constant(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(tmp_path / "a" / "x.png")
    s = load_imagefolder(tmp_path, resolution=32)
    assert (s.x == 200).all()


def test_missing_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Zenodo"):
        load_ninco(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_imagefolder(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        load_imagefolder(tmp_path / "empty")


def test_threaded_loading_is_identical(ninco_tree):
    a = load_imagefolder(ninco_tree / "NINCO_OOD_classes", resolution=20)
    b = load_imagefolder(ninco_tree / "NINCO_OOD_classes", resolution=20, workers=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.meta["files"] == b.meta["files"]
    # decoded pixels match a direct PIL crop of the first image
    from repro.data.imagefolder import _load_image

    np.testing.assert_array_equal(a.x[0].permute(1, 2, 0).numpy(), _load_image(a.meta["files"][0], 20, 0.875))
