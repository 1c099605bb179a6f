"""The `full` profile of chapter 3, offline, on small local stand-ins in the real formats.

Stand-ins: an ImageNet-1k ImageFolder tree (train/ and val/, 3 classes) and a NINCO tree in the archive's
layout (NINCO_OOD_classes, NINCO_OOD_unit_tests with the archive's abbreviated folder names,
NINCO_popular_datasets_subsamples), both found through data_manifests/ (REPRO_DATA); each holds a few
real 40x40 PNGs plus hard links of them, so the manifests' presence checks (min_count) pass as they would
for the real assets; a timm model (test_vit, pretrained=False) whose state_dict is saved to a file and
read back through the same `checkpoint:` path a real checkpoint takes; a REPRO_PROFILE_DIR/ch3.yaml whose
`full` section points at it.
"""

import numpy as np
import pytest
import torch
import yaml

from conftest import image_tree, run_chapter_on_standins
from repro.core.config import PROFILE_DIR, chapter_config
from repro.data.manifests import MissingAsset, load as load_manifest
from repro.studies.ch3_ninco.experiment import benchmark_unit_tests, evaluate_zoo, load_ood_benchmark
from repro.studies.ch3_ninco.zoo import trained_zoo, zoo_entries

ID_CLASSES = ["n01440764", "n01443537", "n01484850"]
NINCO_CLASSES = ["caracal", "donuts", "fireworks", "waffles"]
UNIT_FOLDERS = ["bla", "whi", "uni", "SmN"]
POPULAR = ["Places", "Species"]


def _min_count(name):
    return int(load_manifest(name).expect["min_count"])


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full_standins")
    rng = np.random.default_rng(0)
    data = tmp / "data"
    imagenet = data / load_manifest("imagenet1k").layout
    image_tree(imagenet / "train", ID_CLASSES, 8, 8, rng)
    per_val = -(-_min_count("imagenet1k") // len(ID_CLASSES))
    image_tree(imagenet / "val", ID_CLASSES, 4, per_val, rng)
    ninco = data / load_manifest("ninco").layout / "NINCO"
    per_ninco = -(-_min_count("ninco") // len(NINCO_CLASSES))
    image_tree(ninco / "NINCO_OOD_classes", NINCO_CLASSES, 3, per_ninco, rng)
    image_tree(ninco / "NINCO_OOD_unit_tests", UNIT_FOLDERS, 3, 3, rng)
    image_tree(ninco / "NINCO_popular_datasets_subsamples", POPULAR, 3, 3, rng)
    # a timm model without pretrained weights, saved like a downloaded checkpoint
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=len(ID_CLASSES))
    ckpt = tmp / "test_vit.pth"
    torch.save(model.state_dict(), ckpt)
    # the profile override: packaged smoke/cpu sections, a `full` section sized for the stand-ins
    prof = yaml.safe_load((PROFILE_DIR / "ch3.yaml").read_text())
    full = prof["full"]
    # 176 px: test_vit evaluates at 160 px with crop 0.95 (its timm data config); 176 * 0.95 >= 160, no upsampling
    full["benchmark"] = {"resolution": 176, "crop_pct": 1.0, "n_train_per_class": 6, "n_val_per_class": 2,
                         "n_test_per_class": 4, "ninco_max_per_class": 3, "workers": 2}
    full["zoo"] = [{"name": "tiny-vit", "arch": "test_vit", "pretrained": True, "checkpoint": str(ckpt)},
                   {"name": "tiny-vit-b", "arch": "test_vit", "pretrained": True, "checkpoint": str(ckpt),
                    "model_kwargs": {"drop_rate": 0.1}}]
    full["detectors"]["knn"] = {"k": 3}
    pdir = tmp / "profiles"
    pdir.mkdir()
    (pdir / "ch3.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return {"data": data, "profiles": pdir, "ckpt": ckpt, "state_dict": model.state_dict(), "tmp": tmp}


@pytest.fixture
def full_env(standins, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(standins["data"]))
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(standins["profiles"]))
    return standins


def test_full_benchmark_is_a_world_from_the_image_folders(full_env):
    cfg = chapter_config("ch3", "full")
    assert cfg["benchmark"]["resolution"] == 176  # the override file is used
    w = load_ood_benchmark(cfg, "full", 0)
    assert w.source == "imagefolder" and w.resolution == 176 and w.class_names == ID_CLASSES
    assert len(w.id_train) == 6 * 3 and len(w.id_val) == 2 * 3 and len(w.id_test) == 4 * 3
    assert w.id_train.x.shape[1:] == (3, 176, 176) and w.id_test.x.dtype == torch.uint8
    # id_train/id_val come from train/ (disjoint files), id_test from val/
    tr, va = w.id_train.meta["files"], w.id_val.meta["files"]
    assert len(tr) == len(w.id_train) and len(va) == len(w.id_val) and not set(tr) & set(va)
    assert all("/train/" in f for f in tr + va) and all("/val/" in f for f in w.id_test.meta["files"])
    assert w.ood["ninco"].class_names == NINCO_CLASSES and len(w.ood["ninco"]) == 3 * 4
    assert sorted(w.ood) == ["ninco", "pop_places_clean", "pop_species_clean"]
    assert all(v.flags is None for v in w.ood.values())
    units = benchmark_unit_tests(w, cfg, 0)
    assert sorted(units) == ["black", "smooth_noise", "uniform", "white"]  # archive folder names -> our keys
    assert all(u.shape == (3, 3, 176, 176) for u in units.values())
    with pytest.raises(ValueError, match="only in the generated world"):
        w.popular("x", n=10, p=0.5)


def test_train_and_val_split_is_disjoint(full_env):
    from repro.studies.ch3_ninco.experiment import _split_train_val
    from repro.data.world import ImageSet

    y = torch.tensor([0, 0, 0, 1, 1, 1])
    s = ImageSet(torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 8, 8).contiguous(), y, ["a", "b"], "t")
    tr, va = _split_train_val(s, 2)
    assert tr.y.tolist() == [0, 0, 1, 1] and va.y.tolist() == [0, 1]
    assert set(tr.x[:, 0, 0, 0].tolist()).isdisjoint(va.x[:, 0, 0, 0].tolist())
    with pytest.raises(ValueError, match="too few images"):
        _split_train_val(s, 3)


def test_pretrained_zoo_loads_the_checkpoint_file(full_env):
    cfg = chapter_config("ch3", "full")
    w = load_ood_benchmark(cfg, "full", 0)
    zoo = trained_zoo(w, zoo_entries(cfg), seed=0, progress=False)
    assert [z.name for z in zoo] == ["tiny-vit", "tiny-vit-b"]
    z = zoo[0]
    sd = full_env["state_dict"]
    assert all(torch.equal(v, sd[k]) for k, v in z.model.state_dict().items())  # weights = the file, head included
    assert z.transform is not None and z.transform.size == (160, 160)  # test_vit's own input size
    assert 0.0 <= z.test_acc <= 1.0 and z.entry.recipe == "pretrained (timm)"
    f = z.features(w.id_test)
    assert f.features.shape[0] == len(w.id_test) and f.logits.shape == (len(w.id_test), 3)
    assert z.test_acc == pytest.approx(float((f.logits.argmax(1) == f.labels).mean()))
    res = evaluate_zoo(w, zoo[:1], benchmark_unit_tests(w, cfg, 0), {"msp": {}, "maha": {}, "knn": {"k": 3}},
                       cfg["contamination"], seed=0)
    assert set(res["summary"].dataset) == {"ninco", "pop_places_clean", "pop_species_clean"}
    assert len(res["units"]) == 3 * 4 and res["cleaning"].empty and res["study"].empty
    assert any("contamination study" in r for r in res["skipped"]) and any("cleaning" in r for r in res["skipped"])


def test_checkpoint_with_wrong_classes_is_a_clear_error(full_env, tmp_path):
    import timm

    bad = tmp_path / "five.pth"
    torch.save(timm.create_model("test_vit", num_classes=5).state_dict(), bad)
    cfg = chapter_config("ch3", "full")
    w = load_ood_benchmark(cfg, "full", 0)
    with pytest.raises(ValueError, match="do not fit"):
        trained_zoo(w, [{"name": "bad", "arch": "test_vit", "pretrained": True, "checkpoint": str(bad)}], progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trained_zoo(w, [{"name": "gone", "arch": "test_vit", "pretrained": True, "checkpoint": str(tmp_path / "x.pth")}],
                    progress=False)
    with pytest.raises(ValueError, match="pretrained: true"):
        zoo_entries([{"name": "x", "arch": "resnet_t", "checkpoint": str(bad)}])


def test_missing_assets_name_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "empty"))
    with pytest.raises(MissingAsset, match=r"2 missing dataset") as e:
        load_ood_benchmark(chapter_config("ch3", "full"), "full", 0)
    msg = str(e.value)  # both assets named, with their manifests and how to get them
    assert "imagenet1k.yaml" in msg and "cannot be downloaded automatically" in msg
    assert "ninco.yaml" in msg and "repro data fetch ninco" in msg


def test_bad_benchmark_config():
    with pytest.raises(ValueError, match="unknown key"):
        load_ood_benchmark({"benchmark": {"resolutoin": 40}}, "full", 0)
    with pytest.raises(ValueError, match="openood"):
        load_ood_benchmark({"benchmark": {"openood": ["places"]}}, "full", 0)
    with pytest.raises(ValueError, match="'world' section"):
        load_ood_benchmark({}, "smoke", 0)
    with pytest.raises(ValueError, match="unknown profile"):
        load_ood_benchmark({}, "gpu", 0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ch3_notebook_runs_in_full_profile_on_standins(standins, tmp_path):
    out = run_chapter_on_standins("ch3", standins, tmp_path, timeout=590)
    claims = out / "full" / "ch3" / "claims.csv"
    assert claims.exists()
    import pandas as pd

    df = pd.read_csv(claims)
    assert (df.verdict == "not testable at this scale").any()
    contam = df[df.section == "contamination"]
    assert len(contam) == 3 and (contam.verdict == "not testable at this scale").all()
    nb = next((out / "full").rglob("ch3_ninco.ipynb")).read_text()
    assert "Not in this run:" in nb and "contamination study" in nb and "imagefolder world" in nb
    assert "Traceback" not in nb


# --------------------------------------------------------------------------- each checkpoint's own input pipeline
def test_input_pipeline_refuses_upsampling_crop_and_squash():
    from repro.studies.ch3_ninco.zoo import ZooEntry, check_input_pipeline, input_mismatch

    vit = ZooEntry("tiny", "test_vit", pretrained=True)  # timm data config: 160 px, crop 0.95, centre
    assert input_mismatch(vit, 176, 1.0) is None
    assert "upsampling" in input_mismatch(vit, 40, 1.0)  # the old 40 px stand-in store fed a 160 px model
    assert "crop_pct" in input_mismatch(vit, 384, 0.875)  # the model needs more context than the stored crop
    sq = ZooEntry("cnx2", "convnextv2_large.fcmae_ft_in22k_in1k_384", pretrained=True)
    assert "squash" in input_mismatch(sq, 512, 1.0)
    with pytest.raises(ValueError, match="(?s)2 zoo entries.*resolution"):
        check_input_pipeline([vit, sq, ZooEntry("t", "resnet_t")], 40, 1.0)


def test_pretrained_transform_crops_the_models_region():
    import timm

    from repro.studies.ch3_ninco.zoo import pretrained_transform

    m = timm.create_model("test_vit", pretrained=False, num_classes=3)
    x = torch.zeros(1, 3, 200, 200, dtype=torch.uint8)
    x[..., 95:105, 95:105] = 255  # a centre square; the border ring would be cut by a 0.5 crop
    x[..., :5, :] = 255
    t_full, t_half = pretrained_transform(m, 0.95), pretrained_transform(m, 1.9)  # crop 0.95/0.95 and 0.95/1.9
    assert t_full.crop_frac == 1.0 and t_half.crop_frac == pytest.approx(0.5)
    assert t_full.id != t_half.id and "centre0.5000" in t_half.id
    out = t_half(x)
    assert out.shape == (1, 3, 160, 160)
    assert out[..., :20, :].max() < out.max()  # the top stripe is outside the central half


def test_plan_refuses_mismatched_checkpoints_before_loading(full_env):
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco.experiment import plan

    cfg = chapter_config("ch3", "full")
    bad = {**cfg, "benchmark": {**cfg["benchmark"], "resolution": 40}}
    with pytest.raises(ValueError, match="upsampling"):
        plan(bad, "full", 0)
