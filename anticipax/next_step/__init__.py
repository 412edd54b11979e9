"""Method 2: next-step sentence anticipation with cross-modal contrastive distillation (CCD).

A model observes the first k steps of a recipe video and generates the sentence of step k+1 (`task.py`,
`model.py`, `decoder.py`, `decoding.py`). A text teacher, optionally pretrained on external recipe text
(`data/corpus/`), passes its knowledge to the visual student through a contrastive loss between their
per-step representations (`losses.py`). Scored with BLEU/METEOR/ROUGE-L/CIDEr (`captions/`) beside
reference predictors (`references.py`).
"""
