"""Loaders and converters for released checkpoints that timm / transformers do not read as-is.

One file per checkpoint family (the pretrained zoos of Tables 1-2 of Sec. 8.3):

- :mod:`.augreg`: AugReg ViT ``.npz`` files and their ``index.csv`` (Steiner et al.);
- :mod:`.clip_soups`: model-soups CLIP ViT-B/32 fine-tunes (Wortsman et al. 2022);
- :mod:`.bert`: "BERTs of a feather" MNLI classifiers (McCoy et al. 2020): tokenizer, logits wrapper,
  TensorFlow -> HF conversion.

Each loader returns an eval-mode ``nn.Module`` whose ``forward`` gives logits, so
:func:`repro.sharpness.measure_detailed` runs on it unchanged. timm / transformers are imported
inside the functions: importing this package stays cheap.
"""
from repro.models.checkpoints.augreg import AUGREG_AUG_ORDER, load_augreg_npz, read_augreg_index
from repro.models.checkpoints.bert import (BERT_MNLI_LABELS, TextClassifierLogits, bert_tf_to_hf, bert_tokenizer,
                                           convert_bert_tf_checkpoint)
from repro.models.checkpoints.clip_soups import NormalizedFeatureClassifier, load_clip_soup

__all__ = ["AUGREG_AUG_ORDER", "load_augreg_npz", "read_augreg_index", "BERT_MNLI_LABELS", "TextClassifierLogits",
           "bert_tf_to_hf", "bert_tokenizer", "convert_bert_tf_checkpoint", "NormalizedFeatureClassifier",
           "load_clip_soup"]
