"""Tiny HF decoder-only LM: tokenizer, from-scratch pretraining, save/from_pretrained round trip."""
import random

import pytest
import torch

from repro.data.facts import EOS, make_facts_corpus, pretraining_texts
from repro.models import lm


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    c = make_facts_corpus(0, n_forget_topics=1, n_retain_topics=1, n_relearn_topics=1, n_generic_topics=1,
                          entities_per_topic=1, n_unknowable=5)
    tok = lm.train_tokenizer(c.all_texts())
    model = lm.build_lm(len(tok), d_model=32, n_layers=1, n_heads=2, d_ff=64, seed=0,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return c, tok, model


def test_tokenizer_word_level_specials_first(tiny):
    c, tok, _ = tiny
    assert (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id) == (0, 1, 2)
    f = c.facts["forget"][0]
    ids = tok(c.qa_text(f), add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert len(tok(f.answer.split()[-1], add_special_tokens=False)["input_ids"]) == 1
    assert max(tok.get_vocab().values()) == len(tok) - 1


def test_pretraining_reduces_loss(tiny):
    c, tok, model = tiny
    m = lm.build_lm(len(tok), d_model=32, n_layers=1, n_heads=2, d_ff=64, seed=1,
                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    losses = lm.pretrain_lm(m, tok, lambda e: pretraining_texts(c, random.Random(e), n_multi=5), steps=60,
                            batch_size=8, lr=1e-2, warmup=5)
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:5]) / 5


def test_save_from_pretrained_round_trip(tiny, tmp_path):
    c, tok, model = tiny
    lm.save_lm(model, tok, tmp_path / "m")
    m2, tok2 = lm.load_lm(tmp_path / "m")
    x = tok(["Q : who led x ? A :"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model.eval()(x).logits, m2(x).logits, atol=1e-6)
    assert tok2.get_vocab() == tok.get_vocab() and tok2.pad_token == tok.pad_token
    m3, _ = lm.lm_from_bytes(lm.lm_to_bytes(model, tok))
    with torch.no_grad():
        assert torch.allclose(model(x).logits, m3(x).logits, atol=1e-6)


def test_bad_inputs(tiny, tmp_path):
    c, tok, _ = tiny
    with pytest.raises(FileNotFoundError, match="save_lm"):
        lm.load_lm(tmp_path / "missing")
    with pytest.raises(ValueError, match="divisible"):
        lm.build_lm(10, d_model=30, n_heads=4)
    import copy
    t2 = copy.deepcopy(tok)
    t2.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        lm.check_tokenizer(t2)
    with pytest.raises(ValueError, match="non-empty"):
        lm.train_tokenizer([])
