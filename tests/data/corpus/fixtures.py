"""Tiny recipe corpora written byte for byte in the real formats, and what reading them must give.

Each corpus is `(bytes, [(id, title, url, ingredients, steps, line), ...])`; `line` is where the
record or element starts.

- RECIPENLG: a byte-order mark, the unnamed index column, CSV quoting with doubled quotes, a comma and
  a newline inside a quoted field, JSON escapes inside the JSON arrays (\\", \\n, \\u00e9), é ½ ° and an
  emoji, empty lists, a CRLF line end and a link without scheme.
- RECIPE1M: unicode escapes (a surrogate pair too), nested lists in an extra field, an integer id,
  whitespace and CR/LF/tab between elements, optional fields left out.
- TEXT: steps separated by "|" with or without spaces, blank and whitespace-only lines, CRLF and CR.
"""

RECIPENLG = (
    "\ufeff,title,ingredients,directions,link,source,NER\n"
    '0,"Crème brûlée,\n""classic""","[""½ cup sugar"", ""4 egg yolks""]","[""Heat the oven to 150°C."", '
    '""Whisk the yolks,\\nthen add cream 🍮.""]",www.cookbooks.com/Recipe-Details.aspx?id=44874,Gathered,'
    '"[""sugar"", ""egg yolks""]"\n'
    "1,Empty,[],[],,Gathered,[]\n"
    '2,Tea,"[""1 tea bag""]","[""Boil \\""hot\\"" water."", ""Steep it \\u00e9."", ""Serve.""]",'
    "http://www.example.com/tea/,Recipes1M,\"[\"\"tea\"\"]\"\r\n"
    '3,Toast,"[]","[""Toast the bread."", """", ""Butter it.""]",example.com/toast,Gathered,"[""bread"", '
    '""butter""]"\n'
).encode("utf-8")
RECIPENLG_RECIPES = [
    ("0", 'Crème brûlée,\n"classic"', "www.cookbooks.com/Recipe-Details.aspx?id=44874", ("sugar", "egg yolks"),
     ("Heat the oven to 150°C.", "Whisk the yolks,\nthen add cream 🍮."), 2),
    ("1", "Empty", "", (), (), 4),
    ("2", "Tea", "http://www.example.com/tea/", ("tea",), ('Boil "hot" water.', "Steep it é.", "Serve."), 5),
    ("3", "Toast", "example.com/toast", ("bread", "butter"), ("Toast the bread.", "", "Butter it."), 6),
]

RECIPE1M = (
    '[\n  {"id": "000018c8a5", "title": "Mac \\u0026 Cheese", "url": "http://www.epicurious.com/recipes/mac",\n'
    '   "partition": "train", "ingredients": [{"text": "6 ounces penne"}, {"text": "2 cups Beecher\\u2019s '
    '\\"Flagship\\" cheese"}],\n'
    '   "instructions": [{"text": "Preheat the oven to 350 F."}, {"text": "Cook the \\ud83e\\uddc0 pasta."}],\n'
    '   "extra": {"nested": [[1, 2.5, null], {"a": [], "b": [true, false]}]}},\r\n'
    '\t{"id": 42, "ingredients": [], "instructions": [], "partition": "val"} ,\n'
    '\n'
    '  {"instructions": [{"text": "Stir.", "id": "x"}, {"text": "Chill – 2 h."}], "ingredients": [{"text": "ice"}], '
    '"id": "ff"}\n'
    ']\n'
).encode("utf-8")
RECIPE1M_RECIPES = [
    ("000018c8a5", "Mac & Cheese", "http://www.epicurious.com/recipes/mac",
     ("6 ounces penne", "2 cups Beecher’s \"Flagship\" cheese"),
     ("Preheat the oven to 350 F.", "Cook the 🧀 pasta."), 2),
    ("42", "", "", (), (), 6),
    ("ff", "", "", ("ice",), ("Stir.", "Chill – 2 h."), 8),
]

TEXT = ("Chop the onion. | Fry it, 5 min.\n\n   \nBoil water.|Steep ½ minute 🍵.\r\n"
        "One step only\r \n").encode("utf-8")
TEXT_RECIPES = [
    ("1", "", "", (), ("Chop the onion.", "Fry it, 5 min."), 1),
    ("4", "", "", (), ("Boil water.", "Steep ½ minute 🍵."), 4),
    ("5", "", "", (), ("One step only",), 5),
]


def as_tuples(recipes, path, element=False):
  """`CorpusRecipe`s -> the tuples above (checking that `where` names the path and line)."""
  out = []
  for i, r in enumerate(recipes):
    line = int(r.where[len(str(path)) + 1:].split(":")[0])
    assert r.where == f"{path}:{line}" + (f": element {i}" if element else ""), r.where
    out.append((r.id, r.title, r.url, r.ingredients, r.steps, line))
  return out
