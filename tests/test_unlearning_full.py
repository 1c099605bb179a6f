"""The ``full`` profile's code path, offline, on small local stand-ins in the real formats.

* the LKF data as the `lkf` manifest lays them out (``forget_standard.jsonl``, ``*_train_para``,
  ``*_eval_para`` with the q_qwen/q_phi/q_mist paraphrase columns, ``relearn``, ``mmlu``,
  ``alpaca_eval``) under ``$REPRO_DATA``, found through a manifest YAML with ``require``;
* a tiny ``LlamaForCausalLM`` + tokenizer written with ``save_pretrained`` and named as
  ``model.hf_id`` in a ``ch7.yaml`` under ``$REPRO_PROFILE_DIR``, so ``build_world`` loads it with
  ``AutoModelForCausalLM.from_pretrained`` exactly as it would load Llama-3.2-3B-Instruct.
"""
import json

import pytest
import torch
import yaml

from repro.core import config
from repro.data import facts as F
from repro.data.manifests import MissingAsset
from repro.models import lm

MODELS = ("qwen", "phi", "mist")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_lkf_standin(root, n_forget=4, n_retain=6):
    """LKF-format files: real-looking questions, answers, 5 training and 15 (retain: 9) eval paraphrases."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, per_model in (("forget", n_forget, 5), ("retain", n_retain, 3)):
        std, tp, ep = [], [], []
        for i in range(n):
            q, a = f"which town hosted {split} event number {i}", f"Town{split}{i}"
            std.append({"question": q, "answer": a})
            tp += [{"question": f"{q} , paraphrase {k}", "answer": a} for k in range(5)]
            row = {"question": q, "answer": a}
            row |= {f"q_{m}{k}": f"{m} asks : {q} variant {k}" for m in MODELS for k in range(1, per_model + 1)}
            ep.append(row)
        _write_jsonl(root / f"{split}_standard.jsonl", std)
        _write_jsonl(root / f"{split}_train_para.jsonl", tp)
        _write_jsonl(root / f"{split}_eval_para.jsonl", ep)
    _write_jsonl(root / "relearn.jsonl", [{"question": f"what is fact {i}", "answer": f"value{i}"} for i in range(3)])
    _write_jsonl(root / "mmlu.jsonl", [{"question": f"pick option {i}", "choices": ["alpha", "beta", "gamma", "delta"],
                                        "answer": i % 4} for i in range(4)])
    _write_jsonl(root / "alpaca_eval.jsonl", [{"instruction": f"describe thing {i}", "output": f"thing {i} is nice"}
                                              for i in range(3)])
    return root


MANIFEST = {
    "name": "lkf", "title": "LKF stand-in", "kind": "hf_dataset", "license": "test", "citation": "test",
    "layout": "lkf", "expect": {"glob": "*_standard.jsonl", "min_count": 2}, "files": [],
    "instructions": "export the nmndeep/LKF-* datasets as JSONL into $REPRO_DATA/lkf",
}


def write_full_standins(tmp):
    """LKF files + manifest + saved tiny Llama + a ch7.yaml whose ``full`` points at them, under ``tmp``
    (also usable by hand: ``REPRO_PROFILE_DIR=tmp/profiles REPRO_DATA=tmp/data repro run ch7 --profile full``)."""
    data = tmp / "data"
    make_lkf_standin(data / "lkf")
    (tmp / "lkf.yaml").write_text(yaml.safe_dump(MANIFEST))
    corpus = F.load_lkf(data / "lkf")
    texts = [corpus.prompt(f, t) + " " + f.answer for s in ("forget", "retain", "relearn", "generic")
             for f in corpus.facts[s] for t in range(len(corpus.templates[f.relation]))]
    texts += list(corpus.descriptions) + list(corpus.descriptions.values()) + ["No idea # ,"]
    texts += [corpus.icr_prompt(f, 0, __import__("random").Random(0)) for f in corpus.facts["forget"]]
    torch.manual_seed(0)
    tok = lm.train_tokenizer(texts)
    model = lm.build_lm(len(tok), d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=512,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    lm.save_lm(model, tok, tmp / "tiny-llama")
    prof = yaml.safe_load(open(config.PROFILE_DIR / "ch7.yaml"))
    full = prof["full"]
    full.update({"torch_threads": 1,
                 "data": {"source": "lkf", "manifest": str(tmp / "lkf.yaml")},
                 "model": {"hf_id": str(tmp / "tiny-llama"), "revision": None, "dtype": "fp32",
                           "gradient_checkpointing": False},
                 "unlearn": {"steps": 2, "batch_size": 2, "warmup": 1},
                 "relearn": {"steps": 2, "batch_size": 2, "lr": 1e-3},
                 "eval": {"n_icr": 2, "n_describe": 3, "describe_tokens": 6, "answer_tokens": 4}})
    full["methods"]["rmu"]["kwargs"]["layer"] = 0
    (tmp / "profiles").mkdir(exist_ok=True)
    (tmp / "profiles" / "ch7.yaml").write_text(yaml.safe_dump(prof))
    return tmp


@pytest.fixture(scope="module")
def full_files(tmp_path_factory):
    return write_full_standins(tmp_path_factory.mktemp("full"))


@pytest.fixture
def full_env(full_files, monkeypatch):
    # after conftest's autouse isolation, which points REPRO_DATA at an empty folder
    monkeypatch.setenv("REPRO_PROFILE_DIR", str(full_files / "profiles"))
    monkeypatch.setenv("REPRO_DATA", str(full_files / "data"))
    return full_files


def test_load_lkf_structure_and_disjoint_paraphrases(full_env):
    c = F.load_lkf(full_env / "data" / "lkf")
    assert isinstance(c, F.LKFCorpus)
    assert [len(c.facts[s]) for s in ("forget", "retain", "relearn", "generic")] == [4, 6, 3, 4]
    assert len(c.train_paraphrases) == 5 and len(c.eval_paraphrases) == 15 and len(c.retain_eval_paraphrases) == 6
    f = c.facts["forget"][0]
    assert "which town hosted forget event number 0" in c.prompt(f) and c.prompt(f).endswith("ANSWER:")
    train_q = {c.prompt(f, t) for t in c.train_paraphrases}
    eval_q = {c.prompt(f, t) for t in c.eval_paraphrases}
    assert len(eval_q) == 15 and not train_q & eval_q and all("paraphrase" in q for q in train_q)
    # retain questions read only their first 6 (of 9) evaluation paraphrases
    r = c.facts["retain"][0]
    assert len({c.prompt(r, t) for t in c.retain_eval_paraphrases}) == 6
    assert c.answer_pools[c.facts["generic"][1].relation] == ["alpha", "beta", "gamma", "delta"]
    assert c.facts["generic"][1].answer == "beta"


def test_load_lkf_bad_input(tmp_path):
    root = make_lkf_standin(tmp_path / "lkf")
    (root / "mmlu.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="mmlu.jsonl"):
        F.load_lkf(root)
    root = make_lkf_standin(tmp_path / "lkf2")
    rows = [json.loads(l) for l in (root / "forget_eval_para.jsonl").read_text().splitlines()]
    for r in rows:
        for k in [k for k in r if k.startswith("q_mist")]:
            del r[k]
    _write_jsonl(root / "forget_eval_para.jsonl", rows)
    with pytest.raises(ValueError, match="evaluation paraphrases"):
        F.load_lkf(root)
    root = make_lkf_standin(tmp_path / "lkf3")
    _write_jsonl(root / "retain_standard.jsonl", [{"question": "q", "reply": "a"}])
    with pytest.raises(ValueError, match="lacks column"):
        F.load_lkf(root)


def test_missing_lkf_asset_names_the_manifest(full_env, monkeypatch, tmp_path):
    from repro.studies.ch7_jensun import experiment as X

    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "empty"))
    cfg = config.chapter_config("ch7", "full")
    with pytest.raises(MissingAsset, match="lkf"):
        X.build_world(cfg, seed=0, device="cpu")


def test_full_profile_runs_end_to_end_on_standins(full_env):
    from repro.studies.ch7_jensun import experiment as X

    cfg = config.chapter_config("ch7", "full")
    assert config.profile_path("ch7").parent == full_env / "profiles"
    w = X.build_world(cfg, seed=0, device="cpu")
    assert isinstance(w.corpus, F.LKFCorpus) and w.pretrain_loss == []      # loaded, not pretrained
    assert set(X.METRICS) <= set(w.base_metrics)
    with torch.no_grad():      # the world's model is the saved one, loaded through from_pretrained
        saved, _ = lm.load_lm(full_env / "tiny-llama")
        x = torch.tensor([[3, 4, 5]])
        assert torch.allclose(saved(x).logits, w.base(x).logits)
    r = X.run_unlearning(w, "jensun", seed=0)
    assert len(r["history"]) == 2 and r["args"]["steps"] == 2
    assert 0 <= r["metrics"]["J_W"] <= 100 and r["metrics"]["J_W"] >= r["metrics"]["standard"]
    # the symbolic '<eos>' target resolves to this tokenizer's eos token
    r2 = X.run_unlearning(w, "jensun", target="No idea<eos>", seed=0)
    assert r2["metrics"]["J_W"] >= 0
    rows = X.run_relearning(w, "jensun", multiples=(1, 2), seed=0)
    assert [row["unlearn_steps"] for row in rows] == [2, 4]
    # one scheduled run per length, relearned inside the run's cache entry: no weights cached
    r4 = X.run_unlearning(w, "jensun", steps=4, seed=0, relearn_after=cfg["relearn"])
    assert r4["final_state"] is None and r4["relearned"]["metrics"]["J_W"] == rows[1]["J_W_relearn"]
    w.cfg["relearn"]["separate_runs"] = False      # the checkpoint shortcut still works
    assert [row["unlearn_steps"] for row in X.run_relearning(w, "jensun", multiples=(1, 2), seed=0)] == [2, 4]
    # a second world reuses the cached base evaluation and unlearning run
    w2 = X.build_world(cfg, seed=0, device="cpu")
    assert w2.base_fp == w.base_fp
    assert X.run_unlearning(w2, "jensun", seed=0)["metrics"]["J_W"] == r["metrics"]["J_W"]


def test_judge_from_profile(full_files):
    from repro.unlearning import evaluation as E
    from repro.studies.ch7_jensun import experiment as X

    assert isinstance(X.make_judge({"name": "match"}), E.MatchJudge)
    j = X.make_judge({"name": "hf", "model": str(full_files / "tiny-llama")})
    assert isinstance(j, E.HFJudge)
    assert j.judge(["q"], ["a"], ["a"]).shape == (1,)
    assert isinstance(X.make_judge({"name": "openai", "base_url": "http://localhost:1/v1", "model": "m"}), E.OpenAIJudge)
    with pytest.raises(ValueError, match="name"):
        X.make_judge({"model": "x"})
    with pytest.raises(ValueError, match="unknown judge"):
        X.make_judge({"name": "gemini"})
