"""Chapter 7 cache keys, profile schema and plan (issue 20 items 5, 7, 10; issue 15).

A cache key holds everything the result depends on: perturbing the judge, the device, the dtype or
any profile value that shapes a run changes the ``ch7_eval`` / ``ch7_unlearn`` key; an API key
never enters it. Profile typos raise instead of falling back to a default."""
import copy
import json
from pathlib import Path

import pytest
import torch

from repro.core import cache, config
from repro.studies.ch7_jensun import experiment as X
from repro.unlearning import evaluation as E


def _world(cfg=None, judge=None, jcfg=None, device="cpu", dtype=torch.float32):
    cfg = cfg or config.chapter_config("ch7", "smoke")
    base = torch.nn.Linear(2, 2).to(dtype)
    judge = judge or E.MatchJudge()
    return X.World(cfg=cfg, corpus=None, tokenizer=None, base=base, device=torch.device(device), base_fp="fp0",
                   judge=judge, judge_id=X.judge_identity(judge, jcfg))


CODE = "repro.studies.ch7_jensun.experiment"


def _keys(w):
    return (cache.key_for("ch7_eval", X.eval_params(w, 0), code=CODE),
            cache.key_for("ch7_unlearn", X.unlearn_params(w, X.unlearn_args(w, "jensun", relearn_after=w.cfg["relearn"])),
                          code=CODE))


def _leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _perturb(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v * 2 + 1
    if isinstance(v, str):
        return v + "x"
    if isinstance(v, list):
        return v + [v[-1] * 2 if v and isinstance(v[-1], (int, float)) else 3]
    return 7


def test_every_profile_value_that_shapes_a_run_changes_both_keys():
    cfg = config.chapter_config("ch7", "smoke")
    ref = _keys(_world(cfg))
    sections = {"eval": cfg["eval"], "corpus": cfg["corpus"], "model": cfg["model"], "unlearn": cfg["unlearn"],
                "relearn": cfg["relearn"], "methods": {"jensun": cfg["methods"]["jensun"]}}
    n = 0
    for path, v in _leaves(sections):
        c = copy.deepcopy(cfg)
        d = c
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = _perturb(v)
        ev, un = _keys(_world(c))
        # every leaf changes the unlearning key; the evaluation key depends on eval/corpus/model/data
        assert un != ref[1], path
        if path[0] in X.KEY_SECTIONS:
            assert ev != ref[0], path
        n += 1
    assert n >= 20
    c = copy.deepcopy(cfg)
    c["data"] = {"source": "lkf", "manifest": "lkf"}
    assert all(a != b for a, b in zip(_keys(_world(c)), ref))


def test_judge_device_and_dtype_change_the_keys_but_not_the_api_key():
    ref = _keys(_world())
    oa = dict(name="openai", base_url="http://localhost:8000/v1", model="judge-a")
    j_a = E.get_judge("openai", base_url=oa["base_url"], model="judge-a")
    k_a = _keys(_world(judge=j_a, jcfg={**oa, "api_key": "SECRET-1"}))
    assert all(a != b for a, b in zip(k_a, ref))                      # match -> LLM judge
    j_b = E.get_judge("openai", base_url=oa["base_url"], model="judge-b")
    k_b = _keys(_world(judge=j_b, jcfg={**oa, "model": "judge-b"}))
    assert all(a != b for a, b in zip(k_a, k_b))                      # another judge model
    # the API key (or the name of its environment variable) is not part of the identity (object or profile)
    j_a2 = E.get_judge("openai", base_url=oa["base_url"], model="judge-a", api_key_env="OTHER_KEY_VAR")
    assert _keys(_world(judge=j_a2, jcfg={**oa, "api_key": "SECRET-2"})) == k_a
    assert X.judge_identity(j_a) == X.judge_identity(j_a2)
    w = _world(judge=j_a, jcfg={**oa, "api_key": "SECRET-1"})
    assert "SECRET" not in json.dumps(X.eval_params(w, 0), default=str)
    assert "SECRET" not in json.dumps(X.judge_identity(j_a), default=str)
    # device type and dtype
    assert all(a != b for a, b in zip(_keys(_world(device="cuda")), ref))
    assert all(a != b for a, b in zip(_keys(_world(dtype=torch.bfloat16)), ref))
    assert _keys(_world()) == ref                                     # and deterministic


def _cfg():
    return config.chapter_config("ch7", "smoke")


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["eval"].update(answer_tokns=50), "answer_tokns"),
    (lambda c: c["eval"].pop("answer_tokens"), "answer_tokens"),
    (lambda c: c.update(sweep={}), "sweep"),
    (lambda c: c["methods"]["jensun"].update(lamda_r=0.5), "lamda_r"),
    (lambda c: c["relearn"].update(curve_step=[1]), "curve_step"),
    (lambda c: c["corpus"].update(n_forget_topic=3), "n_forget_topic"),
])
def test_profile_typos_raise(edit, match):
    c = _cfg()
    edit(c)
    with pytest.raises(ValueError, match=match):
        X.validate_config(c)


def test_corpus_keys_are_checked_against_the_data_source():
    c = _cfg()
    c["data"] = {"source": "lkf", "manifest": "lkf"}     # n_forget_topics is a generated-world key
    with pytest.raises(ValueError, match="n_forget_topics"):
        X.load_corpus(c)


def test_shipped_profiles_validate():
    for p in config.PROFILES:
        X.validate_config(config.chapter_config("ch7", p))


def test_master_weights_reach_the_trainer_and_the_key():
    assert X._trainer_precision_kwargs({}) == {}
    assert X._trainer_precision_kwargs({"master_weights": True}) == {"master_weights": True}
    with pytest.raises(ValueError, match="master_weights"):
        X._trainer_precision_kwargs({"master_weights": "fp32"})
    full = config.chapter_config("ch7", "full")
    assert full["unlearn"]["master_weights"] is True and full["relearn"]["master_weights"] is True
    cfg = config.chapter_config("ch7", "smoke")
    cfg["unlearn"]["master_weights"] = True
    cfg["relearn"]["master_weights"] = True
    w = _world(cfg)
    args = X.unlearn_args(w, "jensun", relearn_after=cfg["relearn"])
    assert args["precision"] == {"master_weights": True} and args["relearn_after"]["master_weights"] is True


def test_plan_feeds_notebook_and_sweep():
    from repro.studies.ch7_jensun import jobs

    cfg = config.chapter_config("ch7", "cpu")
    plan = X.run_plan(cfg)
    assert {p.step for p in plan} == set(X.STEPS)
    js = jobs.build("cpu", 0)
    assert len(js) == len(plan)
    assert [(j.params["method"], j.params.get("options", {"multiples": j.params.get("multiples")})) for j in js] \
        == [(p.method, p.options) for p in plan]
    assert len(X.planned(cfg, "table9")) == sum(len(v) for v in cfg["sweeps"]["lambda_r"].values())
    with pytest.raises(ValueError, match="steps"):
        X.planned(cfg, "table99")


def test_notebook_has_no_loops_or_typed_numbers_and_shows_tables_through_ctx_table():
    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "ch7_jensun.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    body = "\n".join(code[1:])          # after the parameters cell
    import re

    assert not re.search(r"\bfor\s+[\w, ()]+\s+in\b", body), "a loop or comprehension in a notebook cell"
    for bad in ("while True", "lambda ", ".pivot", ".groupby", ".round(", "pd.DataFrame(", "import pandas"):
        assert bad not in body, bad
    last_lines = [c.strip().splitlines()[-1] for c in code[1:]]
    # no cell ends in a bare DataFrame echo: tables are shown with ctx.table (numbered, captioned)
    assert all(l.startswith(("ctx.", "display(", ")", " ")) or "ctx." in l or l.endswith(")") for l in last_lines)
    assert body.count("ctx.table(") >= 12
