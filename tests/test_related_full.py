"""The appendix's `full` profile, offline, on small local stand-ins in the real formats: an ImageNet-1k
ImageFolder tree and a NINCO tree found through data_manifests/ (REPRO_DATA; hard links make the
manifests' min_count checks pass as for the real assets), a timm model (test_vit, pretrained=False)
saved to a file and read back through the zoo's `checkpoint:` path (SeTAR edits it), and
REPRO_PROFILE_DIR files whose `full` sections are sized for the stand-ins."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from repro.core import config
from repro.core.config import PROFILE_DIR, chapter_config
from repro.data.manifests import MissingAsset, load as load_manifest

ID_CLASSES = ["n01440764", "n01443537", "n01484850"]
NINCO_CLASSES = ["caracal", "donuts", "fireworks", "waffles"]


def _tree(root: Path, classes, n_real: int, n_total: int, rng, size=40):
    for c in classes:
        d = root / c
        d.mkdir(parents=True)
        base = rng.integers(0, 256, 3)
        for i in range(n_real):
            img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"img_{i:05d}.png")
        for i in range(n_real, n_total):
            os.link(d / f"img_{i % n_real:05d}.png", d / f"img_{i:05d}.png")


@pytest.fixture
def standins(tmp_path, monkeypatch):
    import timm

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    imagenet = data / load_manifest("imagenet1k").layout
    _tree(imagenet / "train", ID_CLASSES, 8, 8, rng)
    mc = int(load_manifest("imagenet1k").expect["min_count"])
    _tree(imagenet / "val", ID_CLASSES, 4, -(-mc // len(ID_CLASSES)), rng)
    ninco = data / load_manifest("ninco").layout / "NINCO"
    mc = int(load_manifest("ninco").expect["min_count"])
    _tree(ninco / "NINCO_OOD_classes", NINCO_CLASSES, 3, -(-mc // len(NINCO_CLASSES)), rng)
    _tree(ninco / "NINCO_OOD_unit_tests", ["bla", "whi"], 2, 2, rng)  # the archive ships them; unused here
    torch.manual_seed(0)
    ckpt = tmp_path / "test_vit.pth"
    torch.save(timm.create_model("test_vit", pretrained=False, num_classes=len(ID_CLASSES)).state_dict(), ckpt)

    prof = tmp_path / "profiles"
    prof.mkdir()
    ch3 = yaml.safe_load((PROFILE_DIR / "ch3.yaml").read_text())
    ch3["full"]["benchmark"] = {"resolution": 32, "crop_pct": 1.0, "n_train_per_class": 6, "n_val_per_class": 2,
                                "n_test_per_class": 4, "ninco_max_per_class": 3, "popular": False, "workers": 0}
    ch3["full"]["zoo"] = [{"name": "tiny-vit", "arch": "test_vit", "pretrained": True, "checkpoint": str(ckpt)}]
    (prof / "ch3.yaml").write_text(yaml.safe_dump(ch3))
    app = yaml.safe_load((PROFILE_DIR / "appendix.yaml").read_text())
    small = {"name": "tiny-resnet", "arch": "resnet_t", "optimizer": "sgd", "lr": 0.05, "epochs": 2, "batch_size": 8}
    app["full"]["detectors"] = {"msp": {}, "energy": {}, "maha_pp": {}, "knn": {"k": 3}, "feature_norm": {}}
    app["full"]["l2"]["models"] = [small]
    app["full"]["unleashing"].update(model=small, every=1, level_samples=12,
                                     finetune={"epochs": 1, "lr": 0.01, "optimizer": "sgd", "batch_size": 8})
    app["full"]["setar"].update(models=["tiny-vit"], candidates=[0.0, 0.4], top_k=2)
    (prof / "appendix.yaml").write_text(yaml.safe_dump(app))
    monkeypatch.setenv("REPRO_DATA", str(data))
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(prof))
    config._parse_profile_file.cache_clear()
    yield tmp_path
    config._parse_profile_file.cache_clear()


@pytest.mark.slow
def test_full_profile_runs_every_study_on_standins(standins):
    from repro.studies.appendix_related import experiment as X
    from repro.studies.appendix_related.harness import load_benchmark
    from repro.studies.appendix_related.report import appendix_claims

    cfg3, cfg = chapter_config("ch3", "full"), chapter_config("appendix", "full")
    world = load_benchmark(cfg3, "full", seed=0)
    assert world.num_classes == 3 and "ninco" in world.ood and world.resolution == 32
    l2 = X.l2_study(world, cfg3, cfg, seed=0, device="cpu")
    assert set(l2["table"].variant) == {"conventional", "l2-trained"} and set(l2["table"].dataset) == {"ninco"}
    um = X.unleashing_study(world, cfg, seed=0, device="cpu")
    assert um["epochs"] == 2 and set(um["curve"].epoch) == {1, 2} and np.isfinite(um["level"])
    st = X.setar_study(world, cfg3, cfg, seed=0, device="cpu")
    assert list(st["ratios"].layer) == [f"blocks.{i}.mlp.fc1" for i in range(5, -1, -1)]  # W_up, top to bottom
    assert set(st["table"].variant) == {"vanilla", "SeTAR"}
    claims = appendix_claims(l2, um, st)
    assert len(claims) >= 8


def test_full_profile_without_data_names_the_manifest(tmp_path, monkeypatch):
    from repro.studies.appendix_related.harness import load_benchmark

    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "empty"))
    with pytest.raises(MissingAsset, match="repro data fetch|imagenet1k"):
        load_benchmark(chapter_config("ch3", "full"), "full", seed=0)
