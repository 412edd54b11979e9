"""External recipe text for the method-2 text teacher (DATA_FORMATS.md, section 6).

- `readers`: RecipeNLG `full_dataset.csv`, Recipe1M `layer1.json` and plain text, streamed one recipe at
  a time;
- `leak_guard`: the Tasty validation and test recipes that must never reach a teacher;
- `builder`: the TFDS builder `recipe_corpus`, with the text features of `tasty_videos`.
"""
