"""ninco_claims: each claim's verdict follows the numbers (synthetic frames built to give each verdict)."""
import pandas as pd
import pytest

from repro.studies.ch3_ninco.report import ninco_claims, paper_beats_msp, paper_mean_fpr
from repro.reference import CLAIM_COLUMNS, VERDICTS

METHODS = ["msp", "maha", "rmaha", "vim", "cosine", "rcos"]


def summary(fpr: dict) -> pd.DataFrame:
    """fpr: {model: {method: mean_fpr}} -> ninco_summary-like rows."""
    return pd.DataFrame([dict(model=m, method=k, dataset="ninco", mean_fpr=v) for m, d in fpr.items() for k, v in d.items()])


def units(fails: dict, n_tests: int = 17) -> pd.DataFrame:
    """fails: {(model, method): number of failed tests}."""
    rows = []
    for (m, k), nf in fails.items():
        for t in range(n_tests):
            rows.append(dict(model=m, method=k, test=f"t{t}", fpr=0.5 if t < nf else 0.0, failed=t < nf))
    return pd.DataFrame(rows)


def cleaning(drops: dict) -> pd.DataFrame:
    """drops: {(set, method): (fpr_original, fpr_cleaned)}."""
    return pd.DataFrame([dict(model="a", method=k, set=s, p=0.5, fpr_original=o, fpr_cleaned=c, fp_share_contaminated=0.5)
                         for (s, k), (o, c) in drops.items()])


def study(fprs: dict) -> pd.DataFrame:
    return pd.DataFrame([dict(model="a", method="msp", p=p, rep=0, n=100, fpr_original=o, fpr_cleaned=0.1)
                         for p, o in fprs.items()])


def verdict(df, claim_start):
    rows = df[df.claim.str.startswith(claim_start)]
    assert len(rows) == 1, (claim_start, list(df.claim))
    return rows.verdict.iloc[0]


# three models; cosine and rmaha beat msp on all of them; the best method differs between models
GOOD = {"m1": dict(msp=0.6, maha=0.2, rmaha=0.3, vim=0.5, cosine=0.4, rcos=0.45),
        "m2": dict(msp=0.7, maha=0.5, rmaha=0.3, vim=0.6, cosine=0.4, rcos=0.45),
        "m3": dict(msp=0.8, maha=0.7, rmaha=0.6, vim=0.7, cosine=0.3, rcos=0.45)}
FAIL_FEAT = {(m, k): (3 if k in ("maha", "rmaha", "vim") else 0) for m in GOOD for k in METHODS}


def test_all_reproduced_when_numbers_agree():
    df = ninco_claims(summary(GOOD), units(FAIL_FEAT),
                      cleaning({("pop_species", "msp"): (0.6, 0.4), ("pop_species", "maha"): (0.6, 0.2),
                                ("pop_places", "msp"): (0.5, 0.4), ("pop_places", "maha"): (0.5, 0.1)}),
                      study({0.0: 0.2, 0.3: 0.4, 0.6: 0.7}))
    assert list(df.columns[:4]) == CLAIM_COLUMNS and set(df.verdict) <= set(VERDICTS)
    for c in ("Cleaning contaminated", "Cleaning lowers the FPR more", "The more ID objects", "No detector is best",
              "Maha/RMaha/ViM fail", "Unit tests reveal"):
        assert verdict(df, c) == "reproduced", c
    # 3 of 3 models is no "most" a sign test believes (p = 1/8); 5 of 5 is (p = 1/32)
    assert verdict(df, "RMaha and Cosine") == "partly reproduced"
    five = {**GOOD, "m4": GOOD["m1"], "m5": GOOD["m2"]}
    assert verdict(ninco_claims(summary(five), units(FAIL_FEAT)), "RMaha and Cosine") == "reproduced"
    # the pretraining claim needs the paper's checkpoints
    assert verdict(df, "IN-21k pretraining") == "not testable at this scale"


def test_verdicts_flip_with_the_numbers():
    one_best = {m: {**d, "maha": 0.01} for m, d in GOOD.items()}
    worse = {m: {**d, "rmaha": 0.9, "cosine": 0.9} for m, d in GOOD.items()}
    df = ninco_claims(summary(one_best), units({k: 0 for k in FAIL_FEAT}),
                      cleaning({("pop_species", "msp"): (0.6, 0.4), ("pop_species", "maha"): (0.6, 0.5)}),
                      study({0.0: 0.5, 0.3: 0.4, 0.6: 0.3}))
    assert verdict(df, "Cleaning contaminated") == "reproduced"
    assert verdict(df, "Cleaning lowers the FPR more") == "not reproduced"  # Maha gains less than MSP
    assert verdict(df, "The more ID objects") == "not reproduced"
    assert verdict(df, "No detector is best") == "not reproduced"
    assert verdict(df, "Maha/RMaha/ViM fail") == "not reproduced"
    assert verdict(df, "Unit tests reveal") == "not reproduced"
    assert verdict(ninco_claims(summary(worse), units(FAIL_FEAT)), "RMaha and Cosine") == "not reproduced"
    half = {m: {**d, "cosine": 0.99} for m, d in GOOD.items()}  # rmaha still beats msp, cosine never
    assert verdict(ninco_claims(summary(half), units(FAIL_FEAT)), "RMaha and Cosine") == "partly reproduced"


def test_partly_reproduced_cleaning():
    df = ninco_claims(summary(GOOD), units(FAIL_FEAT),
                      cleaning({("pop_species", "msp"): (0.6, 0.4), ("pop_species", "maha"): (0.6, 0.2),
                                ("pop_places", "msp"): (0.5, 0.4), ("pop_places", "maha"): (0.5, 0.45)}))
    assert verdict(df, "Cleaning lowers the FPR more") == "partly reproduced"


def test_missing_inputs_are_not_testable_with_a_reason():
    two = {k: GOOD[k] for k in ("m1", "m2")}
    df = ninco_claims(summary(two), units({}), cleaning=None, study=pd.DataFrame())
    for c in ("Cleaning contaminated", "Cleaning lowers the FPR more", "The more ID objects", "No detector is best",
              "Maha/RMaha/ViM fail", "Unit tests reveal"):
        assert verdict(df, c) == "not testable at this scale", c
    assert df[df.claim.str.startswith("Cleaning contaminated")].reproduced.iloc[0].startswith("no OOD set")


def test_pretraining_claim_with_paper_models():
    fpr = {"ViT-B-384-21k": dict(msp=0.5, maha=0.25, rmaha=0.3, vim=0.3, cosine=0.4, rcos=0.4),
           "ViT-B-224-21k": dict(msp=0.55, maha=0.3, rmaha=0.35, vim=0.35, cosine=0.45, rcos=0.45),
           "ResNet50": dict(msp=0.7, maha=0.7, rmaha=0.6, vim=0.65, cosine=0.62, rcos=0.6)}
    df = ninco_claims(summary(fpr), units({}))
    assert verdict(df, "IN-21k pretraining") == "reproduced"
    assert "25.0 %" in df[df.claim.str.startswith("IN-21k")].reproduced.iloc[0]
    fpr["ResNet50"]["cosine"] = 0.1  # a 1k model is now best: only partly
    assert verdict(ninco_claims(summary(fpr), units({})), "IN-21k pretraining") == "not reproduced"


def test_bad_input():
    with pytest.raises(ValueError, match="columns"):
        ninco_claims(pd.DataFrame({"x": [1]}), units({}))
    with pytest.raises(ValueError, match="no rows for dataset"):
        ninco_claims(summary(GOOD), units({}), dataset="nope")


def test_paper_table_helpers():
    t = paper_mean_fpr()
    assert t.loc["ViT-B-384-21k", "maha"] == 27.5
    assert paper_beats_msp("rmaha") == (22, 26)
    with pytest.raises(ValueError, match="unknown method"):
        paper_beats_msp("nope")


def test_unit_tests_failed_by_every_pair_reveal_only_partly():
    """When every (model, method) fails several tests, the tests do not single out the strong pairs."""
    everyone = {k: 5 for k in FAIL_FEAT}
    df = ninco_claims(summary(GOOD), units(everyone))
    assert verdict(df, "Unit tests reveal") == "partly reproduced"
    assert "every pair fails" in df[df.claim.str.startswith("Unit tests reveal")].reproduced.iloc[0]


# --------------------------------------------------------------------------- N-Fig. 8, N-Fig. 4, world card
def test_ranking_by_dataset_ranks_methods_and_compares_with_ninco():
    from scipy.stats import kendalltau

    from repro.studies.ch3_ninco.report import ranking_by_dataset

    s = pd.concat([summary(GOOD), summary(GOOD).assign(dataset="near", mean_fpr=lambda d: 1 - d.mean_fpr)])
    cl = cleaning({("pop_species", k): (v, v / 2) for k, v in GOOD["m1"].items()})
    ranks, taus = ranking_by_dataset(s, cl, METHODS)
    assert list(ranks.columns) == ["ninco", "near", "pop_species (original)"] and list(ranks.index) == METHODS
    mean = summary(GOOD).groupby("method").mean_fpr.mean()
    assert ranks["ninco"].to_dict() == mean.rank(method="min").reindex(METHODS).to_dict()
    near = taus.set_index("dataset").loc["near"]
    # 'near' reverses every FPR, so it reverses the ranking
    assert near.kendall_tau_vs_ninco == pytest.approx(-1.0) and near.best_on_set == "msp"
    t = kendalltau(ranks["ninco"], ranks["pop_species (original)"]).statistic
    assert taus.set_index("dataset").loc["pop_species (original)", "kendall_tau_vs_ninco"] == pytest.approx(t)
    with pytest.raises(ValueError, match="no NINCO rows"):
        ranking_by_dataset(s[s.dataset == "near"], cl, METHODS)


def test_hard_class_confusions_votes_over_the_zoo():
    import numpy as np
    import torch
    from types import SimpleNamespace

    from repro.studies.ch3_ninco.experiment import hard_class_confusions, hard_class_gallery_images

    ood = SimpleNamespace(y=torch.tensor([0, 0, 0, 1, 1]), class_names=["fox", "bowl"],
                          x=torch.zeros(5, 3, 4, 4, dtype=torch.uint8))
    idt = SimpleNamespace(y=torch.tensor([0, 1, 2]), class_names=["dog", "cup", "car"],
                          x=torch.ones(3, 3, 4, 4, dtype=torch.uint8))
    world = SimpleNamespace(ood={"ninco": ood}, id_test=idt, num_classes=3)

    def model(pred):
        logits = np.eye(3)[pred]
        return SimpleNamespace(features=lambda s: SimpleNamespace(logits=logits))

    zoo = [model([0, 0, 1, 1, 1]), model([0, 2, 2, 1, 1])]  # fox -> dog 3 of 6, bowl -> cup 4 of 4
    pc = pd.DataFrame([dict(dataset="ninco", method="msp", model=m, ood_class=c, fpr=f)
                       for m, fs in (("a", (0.9, 0.2)), ("b", (0.7, 0.4))) for c, f in zip(["fox", "bowl"], fs)])
    conf = hard_class_confusions(world, zoo, pc, k=2)
    assert list(conf.ood_class) == ["fox", "bowl"] and list(conf.mean_fpr) == pytest.approx([80.0, 30.0])
    assert list(conf.confused_with) == ["dog", "cup"] and list(conf.share) == pytest.approx([50.0, 100.0])
    xs, titles = hard_class_gallery_images(world, conf, per_side=2)
    assert xs.shape[0] == 6 and titles == ["OOD: fox"] * 2 + ["ID: dog"] + ["OOD: bowl"] * 2 + ["ID: cup"]
    with pytest.raises(ValueError, match="no per-class rows"):
        hard_class_confusions(world, zoo, pc, method="energy")


def test_world_card_states_both_settings():
    from types import SimpleNamespace

    from repro.studies.ch3_ninco.report import world_card

    world = SimpleNamespace(num_classes=10, id_train=list(range(6000)), source="generated", resolution=32)
    zoo_tab = pd.DataFrame([dict(model="a", arch="resnet_t", recipe="sgd+aug", epochs=60, train_acc=99.5, test_acc=91.0),
                            dict(model="b", arch="vit_t", recipe="adamw+aug", epochs=60, train_acc=97.0, test_acc=80.0)])
    card = world_card(world, zoo_tab).set_index("aspect")
    assert "600 train images per class" in card.loc["ID data", "this world"]
    assert card.loc["ID train accuracy", "this world"].startswith("97.0-99.5 %")
    assert card.loc["ID test accuracy", "paper"].startswith("66.6-87.2 %")  # N-Tab. 8's top-1 accuracies
    assert "60 epochs" in card.loc["training", "this world"]
