"""A pretrained text model as a user would point `text.pretrained` at one, at test size: the tiny random BERT
of `tests/models/golden/tiny_bert` (hidden 32, 2 layers, an MLM head, vocabulary 100) with a WordPiece
vocabulary of its size, so a command that fine-tunes "a pretrained checkpoint" spends seconds on it, not
the half-minute all-MiniLM-L6-v2's 22 M parameters take to compile and step on a CPU. The real MiniLM is
imported and fine-tuned by tests/models/test_bert.py and tests/next_action/test_teacher.py."""

import json
import pathlib
import shutil
import string

GOLDEN = pathlib.Path(__file__).resolve().parent / "models" / "golden" / "tiny_bert"
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0, as the checkpoint's pad_token_id


def write(directory) -> str:
  """`directory` holding the checkpoint (config.json, model.safetensors) and its tokenizer (vocab.txt);
  returns it as a string. Any lowercase word tokenizes: letters, digits and their `##` continuations."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  for name in ("config.json", "model.safetensors"):
    shutil.copyfile(GOLDEN / name, directory / name)
  size = json.loads((GOLDEN / "config.json").read_text())["vocab_size"]
  pieces = list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase] + list(string.digits)
  punctuation = [c for c in string.punctuation if c not in "#"]
  words = ["the", "and", "to", "in", "of", "with", "for", "on"]  # what's left of the vocabulary: whole words
  vocab = (_SPECIAL + pieces + punctuation + words)[:size]
  assert len(vocab) == size, f"{GOLDEN}: a vocabulary of {size} needs more entries than {len(vocab)}"
  (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
  (directory / "tokenizer_config.json").write_text(json.dumps(
      {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 40}))
  return str(directory)
