import pytest
import torch

from repro.models import create_model
from repro.train.loop import augment_batch, evaluate, train_classifier


def _toy(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.full((n, 3, 16, 16), 60, dtype=torch.uint8)
    x[y == 1, 0] = 200  # class 1 is red
    x = (x.int() + torch.randint(-40, 40, x.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    return x, y


def test_trains_to_high_accuracy_and_is_deterministic():
    x, y = _toy()
    accs = []
    states = []
    for _ in range(2):
        torch.manual_seed(0)  # initialisation is the caller's to seed; training randomness is the trainer's
        m = create_model("resnet_t", 2)
        train_classifier(m, x, y, epochs=2, lr=0.05, batch_size=64, seed=1, progress=False, augment=True)
        accs.append(evaluate(m, x, y)["accuracy"])
        states.append({k: v.clone() for k, v in m.state_dict().items()})
    assert accs[0] > 0.9
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_closure_called_once_for_sgd_twice_for_wrapper():
    x, y = _toy(64)
    calls = {"n": 0}

    class Twice(torch.optim.Optimizer):
        def __init__(self, base):
            self.base = base
            self.param_groups = base.param_groups
            self.defaults = base.defaults
            self.state = base.state

        def zero_grad(self, set_to_none=True):
            self.base.zero_grad(set_to_none=set_to_none)

        def step(self, closure):
            closure()
            calls["n"] += 1
            closure()
            self.base.step()

    m = create_model("resnet_t", 2)
    train_classifier(m, x, y, epochs=1, lr=0.01, batch_size=32, progress=False,
                     make_optimizer=lambda model, base: Twice(base))
    assert calls["n"] == 2


def test_mixup_and_label_smoothing_run():
    x, y = _toy(64)
    m = create_model("vit_t", 2, img_size=16)
    h = train_classifier(m, x, y, epochs=1, lr=1e-3, optimizer="adamw", mixup_alpha=0.2, label_smoothing=0.1,
                         batch_size=32, progress=False)
    assert len(h["history"]) == 1 and h["history"][0]["loss"] > 0


def test_augment_is_crop_and_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, g, pad=0)  # no padding -> crop is identity, only flips
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))


def test_bad_input_messages():
    m = create_model("resnet_t", 2)
    x, y = _toy(8)
    with pytest.raises(ValueError, match="differ in length"):
        train_classifier(m, x, y[:4], epochs=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="int64"):
        train_classifier(m, x, y.int(), epochs=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        train_classifier(m, x, y + 5, epochs=1, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_classifier(m, x[:0], y[:0], epochs=1, lr=0.1, progress=False)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_classifier(m, x, y, epochs=3, lr=1e30, batch_size=4, progress=False)


def test_cyclic_schedule_matches_the_released_code():
    """App. H zoo schedule: np.interp(t, [0, 0.4 T, T], [0, lr, 0]) at step midpoints."""
    import numpy as np

    from repro.train.loop import cyclic_lr

    T, lr = 250, 0.3
    ours = np.array([cyclic_lr(s, T, lr) for s in range(T)])
    ref = np.interp((np.arange(T) + 0.5) / T, [0, 0.4, 1.0], [0, lr, 0])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert ours.argmax() in (99, 100) and ours.min() > 0 and abs(ours.max() - lr) < 0.01


def test_cyclic_schedule_trains_and_bad_schedule_is_rejected():
    import pytest
    import torch

    from repro.models import create_model
    from repro.train.loop import train_classifier

    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(16) % 4
    m = create_model("resnet_t", 4)
    h = train_classifier(m, x, y, epochs=2, lr=0.05, batch_size=8, schedule="cyclic", progress=False, device="cpu")
    assert len(h["history"]) == 2
    with pytest.raises(ValueError, match="cyclic"):
        train_classifier(m, x, y, epochs=1, lr=0.05, schedule="triangle", progress=False, device="cpu")
