"""EGTEA Gaze+ and EPIC-Kitchens-55/100 in the RULSTM release formats.

- `reader`: annotation CSVs, `actions.csv`, class lists, uid lists, history index;
- `lmdb_features`: per-frame features from one LMDB per modality;
- `builders`: the TFDS builders (`egtea_gaze_plus`, `epic_kitchens_55`, `epic_kitchens_100`).
"""
