"""Profile validation (issue 20, item 7): every chapter section of every packaged profile is checked
against its chapter's allowed keys when loaded; a misspelled key fails with one line naming the file,
profile, section, key and the allowed keys, and says where a new key is declared."""
import copy

import pytest
import yaml

from repro.core import config, schema


@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    """Write an edited copy of a packaged profile file into a REPRO_PROFILE_DIR."""
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(tmp_path))

    def write(chapter, edit):
        data = yaml.safe_load((config.PROFILE_DIR / f"{chapter}.yaml").read_text())
        edit(data)
        (tmp_path / f"{chapter}.yaml").write_text(yaml.safe_dump(data))
        config._parse_profile_file.cache_clear()

    yield write
    config._parse_profile_file.cache_clear()


def test_every_packaged_profile_is_valid_and_every_chapter_has_a_schema():
    for ch in config.chapters():
        assert ch in schema.SCHEMAS, f"{ch} has a profile file but no schema in repro/core/schema.py"
        data = yaml.safe_load((config.PROFILE_DIR / f"{ch}.yaml").read_text())
        for p in config.PROFILES:
            schema.validate(ch, p, data[p])
            assert config.chapter_config(ch, p) == data[p]


@pytest.mark.parametrize("chapter, profile, edit, key, section", [
    # ch5: `paper_tabel` would silently compare the ViT zoo with the ResNet table (T3)
    ("ch5", "full", lambda d: d["full"]["zoo_vit"].__setitem__("paper_tabel", d["full"]["zoo_vit"].pop("paper_table")),
     "paper_tabel", "zoo_vit"),
    # ch7: a misspelled answer_tokens would generate 5 tokens instead of 50 (App. B.2)
    ("ch7", "full", lambda d: d["full"]["eval"].__setitem__("answer_token", d["full"]["eval"].pop("answer_tokens")),
     "answer_token", "eval"),
    # ch6: a misspelled blocks / sparse makes claim rows vanish
    ("ch6", "smoke", lambda d: d["smoke"].__setitem__("block", d["smoke"].pop("blocks")), "block", "top level"),
    ("ch6", "cpu", lambda d: d["cpu"].__setitem__("sparce", d["cpu"].pop("sparse")), "sparce", "top level"),
    # ch5 full: data.source / shift.source typos fell back to the generated world
    ("ch5", "full", lambda d: d["full"]["shift"].__setitem__("sorce", "cifar10c"), "sorce", "shift"),
    # nested: a zoo entry's recipe, a ch7 method's hyperparameters
    ("ch3", "cpu", lambda d: d["cpu"]["zoo"][0].__setitem__("weight_decy", 0.1), "weight_decy", "zoo"),
    ("ch7", "smoke", lambda d: d["smoke"]["methods"]["npo"].__setitem__("learning_rate", 1e-3), "learning_rate",
     "methods.npo"),
    ("appendix", "cpu", lambda d: d["cpu"]["unleashing"]["finetune"].__setitem__("epoch", 1), "epoch",
     "unleashing.finetune"),
])
def test_misspelled_keys_raise_naming_key_section_and_allowed(profile_dir, chapter, profile, edit, key, section):
    profile_dir(chapter, edit)
    other = next(p for p in config.PROFILES if p != profile)
    with pytest.raises(ValueError) as e:
        config.chapter_config(chapter, other)  # the file is validated as a whole, whichever profile is asked for
    msg = str(e.value)
    assert "\n" not in msg
    assert f"unknown key {key!r}" in msg and f"[{profile}]" in msg and section in msg
    assert "allowed: " in msg and "repro/core/schema.py" in msg


def test_error_lists_the_allowed_keys_of_that_section(profile_dir):
    profile_dir("ch7", lambda d: d["cpu"]["eval"].update(answer_tokns=50))
    with pytest.raises(ValueError, match=r"allowed: answer_tokens, describe_tokens, n_describe, n_icr "):
        config.chapter_config("ch7", "cpu")


def test_schema_agrees_with_the_chapters_own_validators():
    """ch6 and ch7 check their sections themselves; both lists must stay the same keys as the schema, so a
    key added in one place and not the other fails here (add it to repro/core/schema.py too)."""
    from repro.studies.ch3_ninco.experiment import BENCHMARK_KEYS
    from repro.studies.ch3_ninco.zoo import ZooEntry
    from repro.studies.ch5_sharpness import pretrained
    from repro.studies.ch6_samon.experiment import CONFIG_KEYS
    from repro.studies.ch7_jensun.experiment import METHOD_KEYS, SECTION_KEYS

    assert set(schema.SCHEMAS["ch6"]) == set(CONFIG_KEYS)
    for k, sub in CONFIG_KEYS.items():
        if sub is not None:
            assert set(schema.SCHEMAS["ch6"][k]) == set(sub), k
    assert set(schema.SCHEMAS["ch7"]) == set(SECTION_KEYS)
    for k, sub in SECTION_KEYS.items():
        if sub is not None:
            assert set(schema.SCHEMAS["ch7"][k]) == set(sub), k
    assert set(schema.SCHEMAS["ch7"]["methods"].node) == METHOD_KEYS
    assert set(schema.BENCHMARK) == set(BENCHMARK_KEYS)
    assert set(schema.ZOO_ENTRY) == set(ZooEntry.__dataclass_fields__)
    assert set(schema.PRETRAINED_ZOO_NAMES) == set(pretrained.list_zoos())
    shared = {k: v for k, v in schema.SCHEMAS["ch5"]["pretrained_zoos"].items() if k not in schema.PRETRAINED_ZOO_NAMES}
    assert set(shared) - {"zoos"} == set(pretrained.DEFAULTS)
    for k, v in pretrained.DEFAULTS.items():
        if isinstance(v, dict) and v:
            assert set(shared[k]) == set(v), k


def test_train_sections_are_train_classifier_arguments():
    import inspect

    from repro.data.world import make_world
    from repro.train.loop import train_classifier

    args = set(inspect.signature(train_classifier).parameters)
    assert set(schema.TRAIN) <= args and not set(schema.TRAIN) & {"model", "x", "y", "make_optimizer", "seed", "device"}
    assert set(schema.WORLD) == set(inspect.signature(make_world).parameters)


def test_a_chapter_without_schema_is_not_checked_and_non_mappings_are_refused():
    assert schema.validate("my_site_chapter", "cpu", {"anything": 1}) == {"anything": 1}
    with pytest.raises(ValueError, match="must be a mapping"):
        schema.validate("ch3", "cpu", [1, 2])
    cfg = copy.deepcopy(config.chapter_config("ch4", "cpu"))
    cfg["detectors"]["knn"]["kk"] = 3  # hyperparameters are the detector registry's to check
    schema.validate("ch4", "cpu", cfg)
