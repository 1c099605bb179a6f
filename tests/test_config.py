import pytest
import torch

from repro.core import config


def test_profiles_and_errors():
    assert config.PROFILES == ("smoke", "cpu", "full")
    with pytest.raises(ValueError, match="allowed values: smoke, cpu, full"):
        config.check_profile("large")


def test_every_chapter_profile_file_has_all_profiles():
    for ch in config.chapters():
        for p in config.PROFILES:
            assert isinstance(config.chapter_config(ch, p), dict)


def test_chapter_config_is_a_copy():
    for ch in config.chapters():
        a = config.chapter_config(ch, "smoke")
        a["__mutated__"] = 1
        assert "__mutated__" not in config.chapter_config(ch, "smoke")


def test_unknown_chapter():
    with pytest.raises(ValueError, match="unknown chapter"):
        config.chapter_config("ch99", "cpu")


def test_device_selection():
    assert config.device("cpu") == torch.device("cpu")
    assert config.device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        config.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            config.device("cuda")


def test_seed_everything_repeatable():
    config.seed_everything(3)
    a = torch.rand(4)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    with pytest.raises(ValueError):
        config.seed_everything(-1)


def test_results_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RESULTS", str(tmp_path / "r"))
    d = config.results_dir("smoke", "ch3")
    assert d == tmp_path / "r" / "smoke" / "ch3" and d.is_dir()


def test_unwritable_results_dir_message(tmp_path, monkeypatch):
    import os

    if os.geteuid() == 0:
        # root ignores permission bits; use a path below a regular file instead
        f = tmp_path / "file"
        f.write_text("x")
        monkeypatch.setenv("REPRO_RESULTS", str(f / "sub"))
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("REPRO_RESULTS", str(ro))
    with pytest.raises(OSError, match="REPRO_RESULTS"):
        config.results_dir("smoke", "ch3")


def test_profile_dir_override_replaces_one_chapter(tmp_path, monkeypatch):
    from repro.core import config

    (tmp_path / "ch3.yaml").write_text("smoke: {torch_threads: 1}\ncpu: {torch_threads: 2}\nfull: {torch_threads: 3}\n")
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(tmp_path))
    assert config.chapter_config("ch3", "full") == {"torch_threads": 3}
    assert config.profile_path("ch4") == config.PROFILE_DIR / "ch4.yaml"  # no override file: packaged one
    (tmp_path / "ch4.yaml").write_text("smoke: {}\n")
    with pytest.raises(ValueError, match="lacks the profile section"):
        config.chapter_config("ch4", "cpu")


def test_provenance_names_the_profile_file_used(tmp_path, monkeypatch):
    from repro.core.provenance import Provenance

    assert Provenance(chapter="ch3", profile="smoke", seed=0, device="cpu").profile_file == "repro/profiles/ch3.yaml"
    (tmp_path / "ch3.yaml").write_text("smoke: {}\ncpu: {}\nfull: {}\n")
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(tmp_path))
    prov = Provenance(chapter="ch3", profile="smoke", seed=0, device="cpu")
    assert prov.profile_file == str(tmp_path / "ch3.yaml") and str(tmp_path) in prov.markdown()


def test_chapters_in_book_order():
    from repro.core import config

    assert sorted(["appendix", "ch10", "ch3", "ch7"], key=config.chapter_sort_key) == ["ch3", "ch7", "ch10", "appendix"]
    chs = config.chapters()
    assert chs.index("ch3") < chs.index("ch7") and chs == sorted(chs, key=config.chapter_sort_key)
