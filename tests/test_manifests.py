import pytest

from repro.data import manifests


def test_all_manifests_validate():
    names = manifests.list_names()
    assert {"ninco", "imagenet1k", "cifar10", "cifar100", "openood_v15_imagenet"} <= set(names)
    for m in manifests.all_manifests():
        assert m.instructions.strip()
        for f in m.files:
            assert f["url"].startswith("https://")


def test_missing_asset_error_is_actionable(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(manifests.MissingAsset) as e:
        manifests.require("ninco")
    msg = str(e.value)
    assert "repro data fetch ninco" in msg and str(tmp_path) in msg and "ninco.yaml" in msg


def test_present_asset_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    m = manifests.load("cifar100")
    (tmp_path / m.layout / "cifar-100-python").mkdir(parents=True)
    (tmp_path / m.layout / "cifar-100-python" / "train").write_bytes(b"x")
    assert manifests.require("cifar100") == tmp_path / m.layout
    assert manifests.check("cifar100")["present"]


def test_schema_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(manifests.ManifestError, match="missing key"):
        manifests.load(bad)
    bad.write_text(
        "name: x\ntitle: t\nkind: archive\nlicense: l\ncitation: c\nlayout: x\nexpect: {glob: '*'}\n"
        "files: [{url: 'https://a', hash: 'sha256:123'}]\ninstructions: i\n")
    with pytest.raises(manifests.ManifestError, match="hash"):
        manifests.load(bad)
    with pytest.raises(manifests.ManifestError, match="available"):
        manifests.load("no_such_asset")


def test_fetch_uses_pooch_with_the_manifest_hash(tmp_path, monkeypatch):
    """fetch() hands URL, hash and target folder to pooch (no network: pooch.retrieve is replaced)."""
    import pooch

    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    seen = {}

    def fake_retrieve(url, known_hash, path, processor=None, progressbar=False):
        seen.update(url=url, known_hash=known_hash, path=path, processor=processor)
        return str(path)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    manifests.fetch("cifar10", progress=False)
    assert seen["known_hash"] == "md5:c58f30108f718f92721af3b95e74349a"
    assert seen["url"].endswith("cifar-10-python.tar.gz")
    assert isinstance(seen["processor"], pooch.Untar)
    with pytest.raises(manifests.MissingAsset, match="cannot be downloaded|no downloadable"):
        manifests.fetch("imagenet1k")


def test_every_manifest_citation_is_in_the_books_bibliography():
    import re

    from repro.core.config import project_root

    bib = (project_root() / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    missing = {m.name: m.citation for m in manifests.all_manifests() if m.citation not in keys}
    assert not missing, f"add these citation keys to book/references.bib: {missing}"
