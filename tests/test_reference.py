import re
from pathlib import Path

import pandas as pd
import pytest

from repro.reference import (VERDICTS, claims_frame, list_paper_tables, load_paper_table, summary, verdict_from)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference"


def test_tables_load_and_are_nonempty():
    names = list_paper_tables()
    assert "mpp_T4_openood_avg_fpr_44models" in names and "ch5_kendall_tau_tables_1to4" in names
    for n in names:
        df = load_paper_table(n)
        assert len(df) > 0 and len(df.columns) > 1, n


def test_unknown_table():
    with pytest.raises(ValueError, match="available"):
        load_paper_table("nope")


@pytest.mark.skipif(not (SHARED / "paper_tables").exists(), reason="../shared/reference not beside the checkout")
def test_our_copies_match_the_shared_reference():
    from repro.reference import TABLE_DIR

    for p in (SHARED / "paper_tables").glob("*.csv"):
        assert (TABLE_DIR / p.name).read_bytes() == p.read_bytes(), p.name


def test_average_row_equals_mean_of_models():
    """Internal consistency of the transcribed 44-model table: its printed 'Average' row is the
    mean of the 44 per-model rows (Maha 42.5 -> Maha++ 34.9, the chapter-4 headline)."""
    df = load_paper_table("mpp_T4_openood_avg_fpr_44models")
    avg = df[df.Model == "Average"].iloc[0]
    models = df[df.Model != "Average"]
    assert len(models) == 44
    for col in df.columns[1:]:
        assert abs(models[col].astype(float).mean() - float(avg[col])) < 0.06, col
    assert (float(avg["Maha"]), float(avg["Maha++"])) == (42.5, 34.9)


@pytest.mark.skipif(not (SHARED / "dissertation.txt").exists(), reason="dissertation text not available")
def test_average_row_is_printed_in_the_dissertation():
    text = (SHARED / "dissertation.txt").read_text()
    assert re.search(r"Average\s+84\.4\s+52\.7\s+53\.0\s+51\.0\s+49\.0\s+41\.9\s+90\.7", text)


def test_claims_frame_validation():
    df = claims_frame([{"claim": "c", "paper": 1.0, "reproduced": "2.0", "verdict": "reproduced", "section": "s"}])
    assert list(df.columns[:4]) == ["claim", "paper", "reproduced", "verdict"]
    assert df.loc[0, "paper"] == "1.0"
    with pytest.raises(ValueError, match="verdict"):
        claims_frame([{"claim": "c", "paper": 1, "reproduced": 2, "verdict": "yes"}])
    with pytest.raises(ValueError, match="lacks"):
        claims_frame([{"claim": "c"}])
    with pytest.raises(ValueError, match="at least one"):
        claims_frame([])


def test_verdict_from():
    assert verdict_from(True) == "reproduced"
    assert verdict_from(False) == "not reproduced"
    assert verdict_from(False, partly=True) == "partly reproduced"
    assert verdict_from(None) == "not testable at this scale"
    assert set(VERDICTS) >= {verdict_from(x) for x in (True, False, None)}


def test_summary_collects_chapters(tmp_path):
    for ch in ("ch3", "ch5"):
        d = tmp_path / "cpu" / ch
        d.mkdir(parents=True)
        claims_frame([{"claim": f"{ch} claim", "paper": "1", "reproduced": "2", "verdict": "not reproduced"}]).to_csv(
            d / "claims.csv", index=False)
    s = summary(tmp_path, "cpu")
    assert list(s["chapter"]) == ["ch3", "ch5"]
    assert summary(tmp_path, "smoke").empty
