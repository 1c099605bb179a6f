"""The supervised training loop every vision experiment uses (:mod:`.loop`) and DDP helpers
for torchrun (:mod:`.distributed`)."""
from repro.train.loop import augment_batch, cyclic_lr, evaluate, predict_logits, train_classifier

__all__ = ["train_classifier", "evaluate", "predict_logits", "augment_batch", "cyclic_lr"]
