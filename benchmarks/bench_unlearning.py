"""Chapter 7 throughput: (1) one JensUn unlearning step (trained model forward+backward on forget-target
and retain rows, frozen reference forward on retain rows) vs a bare forward+backward of the same
model on the same rows (target: ratio of tokens/s >= 0.8); (2) batched greedy generation for the
worst-case evaluation vs one prompt at a time (ratio reported; target >= 5).

    .venv/bin/python benchmarks/bench_unlearning.py [--repeats 20]
"""
from __future__ import annotations

import argparse
import random
import time

import torch


def _setup():
    from repro.data.facts import make_facts_corpus
    from repro.models import lm

    c = make_facts_corpus(0, entities_per_topic=2, n_retain_topics=10, n_relearn_topics=2, n_generic_topics=2)
    tok = lm.train_tokenizer(c.all_texts())
    model = lm.build_lm(len(tok), d_model=64, n_layers=2, n_heads=4, d_ff=128, seed=0,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return c, tok, model


def main(repeats: int = 20, batch: int = 8) -> list[dict]:
    from repro.core.config import device
    from repro.unlearning import evaluation as E
    from repro.unlearning import losses as L
    from repro.unlearning.data import make_unlearn_sets
    from repro.unlearning.trainer import frozen_copy

    dev = device("auto")
    c, tok, model = _setup()
    model.to(dev).train()
    ref = frozen_copy(model).to(dev)
    temps = [c.canonical] + c.train_paraphrases
    sets = make_unlearn_sets(tok, [(c.prompt(f, t), f.answer) for f in c.facts["forget"] for t in temps],
                             [(c.prompt(f, t), f.answer) for f in c.facts["retain"] for t in temps])
    loss = L.get("jensun")
    loss.set_target(sets.target_ids)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(repeats):
        i = torch.randint(0, len(sets.forget), (batch,), generator=g)
        j = torch.randint(0, len(sets.retain), (batch,), generator=g)
        batches.append((sets.forget.take(i, dev), sets.forget_target.take(i, dev), sets.retain.take(j, dev)))
    tokens = sum(int(ft.attention_mask.sum() + r.attention_mask.sum()) for _, ft, r in batches)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def unlearn_steps():
        for f, ft, r in batches:
            opt.zero_grad(set_to_none=True)
            total, _ = loss(model, ref, f, ft, r)
            total.backward()
            opt.step()

    def bare_steps():
        from repro.unlearning.losses import joint_logits
        for f, ft, r in batches:
            opt.zero_grad(set_to_none=True)
            a, b = joint_logits(model, ft, r)
            (a.float().logsumexp(-1).mean() + b.float().logsumexp(-1).mean()).backward()
            opt.step()

    times = {"unlearn": [], "bare": []}
    unlearn_steps(); bare_steps()   # warm-up
    for _ in range(3):             # interleaved, best of 3
        for name, fn in (("unlearn", unlearn_steps), ("bare", bare_steps)):
            sync(); t0 = time.perf_counter(); fn(); sync()
            times[name].append(time.perf_counter() - t0)
    tu, tb = min(times["unlearn"]), min(times["bare"])
    rows = [dict(benchmark=f"jensun unlearning step (tiny Llama d64x2, batch {batch}+{batch}, {dev.type})",
                 metric="unlearning tokens/s", value=tokens / tu, reference=f"bare fwd+bwd tokens/s = {tokens / tb:.0f}",
                 ratio=tb / tu, target=">= 0.8 (incl. frozen reference forward)", passed=tb / tu >= 0.8)]

    model.eval()
    rng = random.Random(0)
    prompts = [c.icr_prompt(f, t, rng) if k % 2 else c.prompt(f, t)
               for k, f in enumerate(c.facts["forget"][:16]) for t in c.eval_paraphrases[:4]]
    E.generate(model, tok, prompts[:4], 5)
    t0 = time.perf_counter(); E.generate(model, tok, prompts, 5); tbat = time.perf_counter() - t0
    t0 = time.perf_counter(); E.generate_loop(model, tok, prompts, 5); tloop = time.perf_counter() - t0
    rows.append(dict(benchmark=f"greedy generation for J_W evaluation ({len(prompts)} prompts, {dev.type})",
                     metric="batched prompts/s", value=len(prompts) / tbat,
                     reference=f"one-at-a-time prompts/s = {len(prompts) / tloop:.1f}", ratio=tloop / tbat,
                     target=">= 5", passed=tloop / tbat >= 5))
    for r in rows:
        print(r)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    main(a.repeats, a.batch)
