"""repro.data.cifar10c on a stand-in archive in the real layout (CIFAR-10-C/<corruption>.npy, labels.npy)."""
import numpy as np
import pytest
import torch

from repro.data.cifar10c import CORRUPTIONS, load_cifar10c


def write_fake_cifar10c(root, n=6, names=("contrast", "gaussian_noise")):
    """uint8 [5n, 32, 32, 3] per corruption (severity s = rows (s-1)n..sn-1, pixel value encodes the
    corruption, the severity and the image) and labels.npy, as the Zenodo archive."""
    d = root / "CIFAR-10-C"
    d.mkdir(parents=True)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(d / "labels.npy", labels)
    for c, name in enumerate(names):
        a = np.zeros((5 * n, 32, 32, 3), np.uint8)
        for s in range(5):
            for i in range(n):
                a[s * n + i, :, :, 0] = (40 * c + 5 * s + i) % 256
                a[s * n + i, 0, 0, 1] = 7  # HWC -> CHW must move this to channel 1
        np.save(d / f"{name}.npy", a)
    return root


def test_loads_the_requested_severity_in_chw_with_labels(tmp_path):
    root = write_fake_cifar10c(tmp_path)
    x, y, c = load_cifar10c(["gaussian_noise", "contrast"], severity=3, root=root)
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.uint8
    # first block: gaussian_noise (written second: c=1), severity 3 (s=2), images 0..5
    assert x[:6, 0, 5, 5].tolist() == [40 + 10 + i for i in range(6)]
    assert x[6:, 0, 5, 5].tolist() == [10 + i for i in range(6)]
    assert int(x[0, 1, 0, 0]) == 7 and int(x[0, 1, 1, 1]) == 0
    assert y.tolist() == list(range(6)) * 2 and c.tolist() == [0] * 6 + [1] * 6


def test_bad_input_and_missing_archive(tmp_path, monkeypatch):
    root = write_fake_cifar10c(tmp_path)
    with pytest.raises(ValueError, match="unknown CIFAR-10-C corruption"):
        load_cifar10c(["saturate"], root=root)
    with pytest.raises(ValueError, match="severity must be 1..5"):
        load_cifar10c(["contrast"], severity=6, root=root)
    np.save(root / "CIFAR-10-C" / "contrast.npy", np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="expected uint8"):
        load_cifar10c(["contrast"], root=root)
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "empty"))
    from repro.data.manifests import MissingAsset
    with pytest.raises(MissingAsset, match="repro data fetch cifar10c"):
        load_cifar10c()
    assert len(CORRUPTIONS) == 15
