from repro.book.methods import methods_index, methods_markdown


def test_every_registered_method_is_documented():
    df = methods_index()
    assert {"OOD detectors (ch. 3-4, appendix)"} <= set(df["family"])
    assert df["name"].is_unique or df.groupby("family")["name"].apply(lambda s: s.is_unique).all()
    undocumented = df[df["description"].str.len() < 10]
    assert undocumented.empty, f"registered without a docstring: {list(undocumented['name'])}"


def test_markdown_has_a_section_per_family():
    md = methods_markdown()
    df = methods_index()
    for fam in df["family"].unique():
        assert f"## {fam}" in md
    assert "`maha_pp`" in md
