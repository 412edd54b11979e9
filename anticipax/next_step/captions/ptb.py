"""Pure-Python PTBTokenizer: Stanford CoreNLP 3.4.1's PTBLexer, as pycocoevalcap runs it.

`ptb_tokenize` gives the tokens of pycocoevalcap's `PTBTokenizer` (the 3.4.1 jar with
`-preserveLines -lowerCase`, then PUNCTUATIONS dropped) without Java: a port of PTBLexer.flex at
CoreNLP tag v3.4.1 (options "tokenizeNLs"), its rules in order, JFlex longest match with
trailing context, its [:letter:]/[:digit:] tables read off the jar (`_jar_tables`).
tests/next_step/captions/test_ptb.py compares it with the jar, quirks included: "1 1/2" is one token with
a no-break space; "(" becomes "-lrb-", kept because PUNCTUATIONS lists "-LRB-"; a line-final
"F." keeps its period unless the next line starts with e.g. "The". (Lower-casing is str.lower,
the jar's is Java's String.toLowerCase: in random Unicode they differed once in 24k lines, a
Greek capital sigma next to uncased letters.)

`_clean` (line breaks -> spaces) and `_drop_punctuation` are shared with the Java path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import functools
import re
import unicodedata

from anticipax.next_step.captions import _jar_tables

# From pycocoevalcap/tokenizer/ptbtokenizer.py (kept here too so the pure-Python path does not
# depend on importing it).
PUNCTUATIONS = ("''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                ".", "?", "!", ",", ":", "-", "--", "...", ";")
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x85\u2028\u2029]")


def _class_from_ranges(spec: str) -> str:
  """A regex character-class body from `_jar_tables` notation."""
  out = []
  for item in spec.split():
    a, _, b = item.partition("-")
    out.append(f"\\u{int(a, 16):04x}" + (f"-\\u{int(b, 16):04x}" if b else ""))
  return "".join(out)


def _class_body(pred: Callable[[str], bool]) -> str:
  """A regex character-class body holding the BMP characters for which `pred` holds."""
  parts, start, prev = [], None, None
  for cp in range(0x10000):
    if 0xD800 <= cp <= 0xDFFF or not pred(chr(cp)):
      continue
    if start is None:
      start = prev = cp
    elif cp == prev + 1:
      prev = cp
    else:
      parts.append((start, prev))
      start = prev = cp
  if start is not None:
    parts.append((start, prev))
  return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in parts)


def _ci(literal: str) -> str:
  """A literal matched case-insensitively, as JFlex's %caseless does (classes stay as written)."""
  out = []
  for c in literal:
    if c.lower() != c.upper():
      out.append(f"[{re.escape(c.lower())}{re.escape(c.upper())}]")
    else:
      out.append(re.escape(c))
  return "".join(out)


def _alts(spec: str) -> str:
  """`A|[B]c|d` with flex conventions: words caseless, a `[X]` prefix case-sensitive."""
  out = []
  for word in spec.split("|"):
    m = re.fullmatch(r"\[(\w)\](.*)", word)
    out.append(re.escape(m.group(1)) + _ci(m.group(2)) if m else _ci(word))
  return "(?:" + "|".join(out) + ")"


_LEFT_SINGLE = re.compile("[\u0091\u2018\u201B\u2039]")
_RIGHT_SINGLE = re.compile("[\u0092\u2019\u203A]")
_LEFT_DOUBLE = re.compile("[\u0093\u201C\u00AB]")
_RIGHT_DOUBLE = re.compile("[\u0094\u201D\u00BB]")
_SINGLE = re.compile("&apos;|'")
_DOUBLE = re.compile("\"|&quot;")
_AMP = re.compile("(?i:&amp;)")


def _latex_quotes(tok: str, probably_left: bool) -> str:
  tok = _SINGLE.sub("`" if probably_left else "'", tok)
  tok = _DOUBLE.sub("``" if probably_left else "''", tok)
  tok = _LEFT_SINGLE.sub("`", tok)
  tok = _RIGHT_SINGLE.sub("'", tok)
  tok = _LEFT_DOUBLE.sub("``", tok)
  return _RIGHT_DOUBLE.sub("''", tok)


def _no_soft_hyphens(tok: str) -> str:
  if "\u00ad" not in tok:
    return tok
  return tok.replace("\u00ad", "") or "-"


_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$",
             "\u20ac": "$"}
NEWLINE_TOKEN = "*NL*"
_SKIP = object()


def _parens(tok: str) -> str:
  return tok.replace("(", "-LRB-").replace(")", "-RRB-")


class _PtbLexer:
  """The PTBLexer.flex 3.4.1 rules, in file order, matched JFlex-style (longest, then first).

  A rule is (alternatives, action): each alternative is a regex whose group 1 is the token
  text and whose remainder is the flex trailing context (counted in the match length, as in
  JFlex, but not consumed). An action maps the token text to (output, consumed chars), the
  output being a string, `_SKIP` (whitespace, deleted characters) or NEWLINE_TOKEN.
  """

  def __init__(self):
    letter_body = _class_from_ranges(_jar_tables.JAR_LETTER)
    digit_body = _class_from_ranges(_jar_tables.JAR_DIGIT)
    # [:uppercase:] only decides, in SENTEND, whether a period token (always dropped as
    # punctuation) follows an abbreviation, so Python's Unicode tables are good enough there.
    upper_body = _class_body(lambda c: unicodedata.category(c) == "Lu" or
                             0x2160 <= ord(c) <= 0x216F or 0x24B6 <= ord(c) <= 0x24CF)
    L = f"[{letter_body}]"  # [:letter:]
    D = f"[{digit_body}]"  # [:digit:] (U+07C0-U+07C9 are Nd already)
    LD = f"[{letter_body}{digit_body}]"
    UPPER = f"[{upper_body}]"

    sgml_name = r"[A-Za-z][A-Za-z0-9_:.\-]*"
    SGML = (r"<(?:[!?][A-Za-z\-][^>\r\n]*|" + sgml_name + r"(?:[ ]+(?:" + sgml_name +
            r"[ ]*=[ ]*(?:'[^']*'|\"[^\"]*\")|" + sgml_name + r"))*[ ]*/?|/" + sgml_name +
            r")[ ]*>")
    SPMDASH = f"&{_alts('MD|mdash|ndash')};|[\u0096\u0097\u2013\u2014\u2015]"
    SPAMP = "&" + _ci("amp") + ";"
    SPPUNC = f"&(?:{_alts('HT|TL|UR|LR|QC|QL|QR|odq|cdq')}|#[0-9]+);"
    SPLET = f"&[aeiouAEIOU]{_alts('acute|grave|uml')};"
    SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
    NEWLINE = "(?:\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c|\x85)"
    SPACENL = f"(?:{SPACE}|{NEWLINE})"
    SPACENLS = f"{SPACENL}+"
    SENTEND = f"{SPACENL}(?:{SPACENL}|{UPPER}|{SGML})"
    DATE = f"{D}{{1,2}}[\\-/]{D}{{1,2}}[\\-/]{D}{{2,4}}"
    NUM = f"(?:{D}*(?:[.:,\u00ad\u066b\u066c]{D}+)+|{D}+)"
    NUMBER = f"[\\-+]?{NUM}"
    SUBSUPNUM = ("[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|"
                 "[\u2080-\u2089]+)")
    FRAC = f"(?:{D}{{1,4}}[- \u00a0])?{D}{{1,4}}(?:\\\\?/|\u2044){D}{{1,4}}"
    FRAC2 = "[\u00bc\u00bd\u00be\u2153-\u215e]"
    DOLSIGN = r"(?:[A-Z]*\$|#)"
    DOLSIGN2 = ("[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1"
                "\uffe5\uffe6]")
    letter_extra = (
        "\u00ad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f\u0370-\u037d"
        "\u0384\u0385\u03cf\u03f6\u03fc-\u03ff\u0483-\u0487\u04cf\u04f6-\u04ff\u0510-\u0525"
        "\u055a-\u055f\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0615-\u061a"
        "\u063b-\u063f\u064b-\u065e\u0670\u06d6-\u06ef\u06fa-\u06ff\u070f\u0711\u0730-\u074f"
        "\u0750-\u077f\u07a6-\u07b1\u07ca-\u07f5\u07fa\u0900-\u0903\u093c\u093e-\u094e"
        "\u0951-\u0955\u0962-\u0963\u0981-\u0983\u09bc-\u09c4\u09c7\u09c8\u09cb-\u09cd\u09d7"
        "\u09e2\u09e3\u0a01-\u0a03\u0a3c\u0a3e-\u0a4f\u0a81-\u0a83\u0abc-\u0acf\u0b82"
        "\u0bbe-\u0bc2\u0bc6-\u0bc8\u0bca-\u0bcd\u0c01-\u0c03\u0c3e-\u0c56\u0d3e-\u0d44"
        "\u0d46-\u0d48\u0e30-\u0e3a\u0e47-\u0e4e\u0eb1-\u0ebc\u0ec8-\u0ecd")
    LETTER = f"(?:[{letter_body}{letter_extra}]|{SPLET})"
    LETTERD = f"(?:[{letter_body}{letter_extra}{digit_body}]|{SPLET})"
    WORD = f"{LETTER}{LETTERD}*(?:[.!?]{LETTER}{LETTERD}*)*"
    exts = ("bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|"
            "mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip").split("|")
    FILENAME_EXT = "(?:" + "|".join(_ci(e) for e in sorted(exts, key=len, reverse=True)) + ")"
    FILENAME = f"{LETTERD}+(?:[.]{LETTERD}+)*(?:[.]{FILENAME_EXT})"
    APOS = "(?:['\u0092\u2019]|&" + _ci("apos") + ";)"
    APOSETC = f"(?:{APOS}|[`\u0091\u2018\u201b])"
    HYPHEN = "[-_\u058a\u2010\u2011]"
    THING_PART = f"(?:[dDoOlL]{APOSETC}{LD})?{LD}+"
    THING = f"{THING_PART}(?:{HYPHEN}{THING_PART})*"
    THINGA = f"[A-Z]+(?:(?:[+&]|{SPAMP})[A-Z]+)+"
    THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
    ACRO_SPECIAL = (f"{_alts('Canada|Sino|Korean|EU|Japan|non')}-{_ci('U.S')}|"
                    f"{_ci('U.S.-')}(?:{_ci('U.K')}|{_ci('U.S.S.R')})")
    ACRO = f"(?:{ACRO_SPECIAL}|[A-Za-z](?:\\.[A-Za-z])*)"
    ACRO2 = f"(?:{ACRO_SPECIAL}|[A-Za-z](?:\\.[A-Za-z])+)"
    HTHING = f"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{ACRO2}\\.|[A-Za-z0-9\u00ad]+))+"
    REDAUX = f"{APOS}(?:[msdMSD]|{_ci('re')}|{_ci('ve')}|{_ci('ll')})"
    SWORD = "[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
    SREDAUX = f"{_ci('n')}{APOSETC}{_ci('t')}"
    APOWORD = [
        f"{APOS}{_ci('n')}{APOS}?", f"[lLdDjJ]{APOS}", f"{_ci('Dunkin')}{APOS}",
        f"{_ci('somethin')}{APOS}", f"{_ci('ol')}{APOS}", f"{APOS}{_ci('em')}",
        f"[A-HJ-XZn]{APOSETC}{L}{{2,}}", f"{APOS}[2-9]0{_ci('s')}", f"{APOS}{_ci('til')}[lL]?",
        f"{L}+[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{L}*", f"{APOS}{_ci('cause')}",
        _ci("cont'd") + r"\.?", _ci("'twas"), _ci("nor'easter"), _ci("c'mon"), _ci("e'er"),
        _ci("s'mores"), _ci("ev'ry"), _ci("li'l"), _ci("nat'l"), f"{_ci('O')}{APOSETC}{_ci('o')}"]
    APOWORD2 = f"{_ci('y')}{APOS}"
    FULLURL = (_ci("http") + "[sS]?://" + r"[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]")
    URL_PATH = r"(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?"
    LIKELYURL = [
        _ci("www.") + r"(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}" + URL_PATH,
        r"(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+" + _alts("com|net|org|edu") + URL_PATH]
    EMAIL = (f"(?:&{_ci('lt')};|<)?" + r"[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0{}]*@"
             r"(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+\.)*(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+)" +
             f"(?:&{_ci('gt')};|>)?")
    TWITTER = [r"@[a-zA-Z_][a-zA-Z_0-9]*", f"#{LETTER}+"]
    ABMONTH = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
    ABDAYS = "Mon|Tue|Tues|Wed|Thu|Thurs|Fri"
    ABSTATE = ("Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kan|Kans|Ky|"
               "[L]a|[M]ass|Md|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|"
               "Va|Vt|[W]ash|Wis|Wisc|Wyo")
    ABCOMP = "Inc|Co|Cos|Corp|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys"  # + Pp?t[ye]s? below
    ABNUM = "tel|est|ext|sq"
    ABPTIT = "Jr|Sr|Bros|Ed.D|Ph.D|Blvd|Rd|Esq"
    ABBREV1 = ("(?:" + _alts("|".join((ABMONTH, ABDAYS, ABSTATE, ABCOMP, ABNUM, ABPTIT,
                                       "etc|al|seq|Bldg"))) + "|[pP][pP]?[tT][ye][sS]?)\\.")
    ABTITLE = ("Mr|Mrs|Ms|[M]iss|Dr|Drs|Prof|Profs|Sen|Sens|Rep|Reps|Atty|Attys|Lt|Col|Gen|"
               "Messrs|Gov|Govs|Adm|Rev|Maj|Sgt|Cpl|Pvt|Capt|St|Ste|Ave|Pres|Lieut|Hon|Brig|"
               "Cmdr|Comdr|Pfc|Spc|Supt|Supts|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|"
               "Msgr|Sfc")
    ABCOMP2 = "Invt|Elec|Natl|Dept"  # + M[ft]g below
    ABBREV4 = ("(?:" + _alts(f"{ABTITLE}|vs|Alex|Wm|Jos|Cie|a.k.a|cf|TREAS|Ph|{ABCOMP2}") +
               f"|[mM][ft][gG]|{ACRO})")
    ABBREV2 = ABBREV4 + r"\."
    ACRONYM = ACRO + r"\."
    ACRONYM_NEXT = _alts(
        "[A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|"
        "[H]er|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r.|[M]s.|[N]ow|[O]nce|"
        "[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|"
        "[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou")
    ABBREV3 = _alts("ca|fig|figs|prop|no|nos|art|bldg|pp|op") + r"\."
    PHONE = [
        (r"(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}"
         r"[\- \u00a0])[0-9]{3,4}[\- \u00a0]?[0-9]{3,5}"),
        r"(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}"]
    DBLQUOT = "(?:\"|&" + _ci("quot") + ";)"
    INSENTP = "[,;:\u3001]"
    QUOTES = [APOS, "''", "[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094"
                          "\u201e\u201f\u2039\u203a\u00ab\u00bb]{1,2}"]
    TBSPEC = ("(?:" + "|".join([
        "-" + _alts("RRB|LRB|RCB|LCB|RSB|LSB") + "-", _ci("C.D.s"), _ci("pro-"), _ci("anti-"),
        _ci("S") + f"(?:&|{SPAMP})" + _ci("P-500"), _ci("S") + f"(?:&|{SPAMP})" + _ci("Ls"),
        _ci("Cap") + APOS + _ci("n"), _ci("c") + APOS + _ci("est")]) + ")")
    TBSPEC2 = f"{APOS}[0-9][0-9]"
    SMILEY = r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]"
    asian = r"[\-\^x=~<>']"
    ASIANSMILEY = [r"[\^x=~<>]\.\[\^" + _ci("x") + r"=~<>\]", f"{asian}_{asian}",
                   rf"\({asian}[_.]?{asian}\)", r"\([\^x=~<>']-[\^x=~<>'`]\)"]
    MISCSYMBOL = ("[+%&~\\^|\\\\\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3"
                  "\u00b4-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3\u05c6\u05f3\u05f4"
                  "\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d"
                  "\u07f6\u07f7\u07f8\u0964\u0965\u0e4f\u1fbd\u2016\u2017\u2020-\u2023"
                  "\u2030-\u2038\u203b\u203e-\u2042\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f"
                  "\u2190-\u21ff\u2200-\u2bff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40"
                  "\uff5b-\uff65\uff65]")

    def keep(t):
      return t, len(t)

    def const(value):
      return lambda t: (value, len(t))

    def skip(t):
      return _SKIP, len(t)

    def quotes(probably_left):
      return lambda t: (_latex_quotes(t, probably_left), len(t))

    def soft(t):
      return _no_soft_hyphens(t), len(t)

    def amp(t):
      return _AMP.sub("&", t), len(t)

    def nbsp(t):
      return t.replace(" ", "\u00a0"), len(t)

    def pushback(n):
      return lambda t: (t[:-n], len(t) - n)

    def with_period_again(t):  # Token with its period, and the period once more.
      return t, len(t) - 1

    def acronym(t):  # "I." before "The": "I" then "."; "U.S." before "The": "U.S." then ".".
      return (t[:-1], 1) if len(t) == 2 else (t, len(t) - 1)

    def dashes(t):
      return ("--" if 3 <= len(t) <= 4 else t), len(t)

    def fractions(t):
      return "".join(_FRACTIONS.get(c, c) for c in t), len(t)

    def currency(t):
      return "".join(_CURRENCY.get(c, c) for c in t), len(t)

    def phone(t):
      return _parens(t.replace(" ", "\u00a0")), len(t)

    def smiley(t):
      return _parens(t), len(t)

    rules = [
        (["c[+][+]".replace("c", "[cC]")], keep),
        (["[cCfF]#"], keep),
        ([_ci("cannot")], pushback(3)),
        ([_ci("'twas")], pushback(3)),
        ([_ci("'tis")], pushback(2)),
        ([_alts("gonna|gotta|lemme|gimme|wanna")], pushback(2)),
        ([SGML], nbsp),
        ([SPMDASH], const("--")),
        ([SPAMP], amp),
        ([SPPUNC], keep),
        ([(WORD, REDAUX)], soft),
        ([(SWORD, SREDAUX)], soft),
        ([WORD], soft),
        (APOWORD, keep),
        ([(APOWORD2, L)], keep),
        ([FULLURL], keep),
        (LIKELYURL, keep),
        ([EMAIL], keep),
        (TWITTER, keep),
        ([(REDAUX, "[^A-Za-z]")], quotes(False)),
        ([(SREDAUX, "[^A-Za-z]")], quotes(False)),
        ([DATE], keep),
        ([NUMBER], soft),
        ([SUBSUPNUM], keep),
        ([FRAC], nbsp),
        ([FRAC2], fractions),
        ([TBSPEC], amp),
        ([THING3], keep),
        ([DOLSIGN], keep),
        ([DOLSIGN2], currency),
        ([(ACRONYM, f"{SPACENLS}(?:{ACRONYM_NEXT}|{SGML}){SPACENL}")], acronym),
        ([(ABBREV3, f"{SPACENL}?{D}")], keep),
        ([("(?:" + _alts("pte|pty|co") + r")\.", f"{SPACE}{_alts('ltd|lim')}")], keep),
        ([(ABBREV1, SENTEND)], with_period_again),
        ([(ABBREV1, "(?s:..)")], keep),
        ([ABBREV1], with_period_again),
        ([ABBREV2], keep),
        ([(ABBREV4, SPACE)], keep),
        ([(ACRO, SPACENL)], keep),
        ([(TBSPEC2, SPACENL)], keep),
        ([(FILENAME, f"(?:{SPACENL}|[.?!,])")], keep),
        ([(WORD + r"\.", INSENTP)], soft),
        (PHONE, phone),
        ([(DBLQUOT, "[A-Za-z0-9$]")], quotes(True)),
        ([DBLQUOT], quotes(False)),
        (["\x7f"], skip),
        ([f"<|&{_ci('lt')};"], const("<")),
        ([f">|&{_ci('gt')};"], const(">")),
        ([(SMILEY, "[^A-Za-z0-9]")], smiley),
        (ASIANSMILEY, smiley),
        ([r"\{"], const("-LCB-")),
        ([r"\}"], const("-RCB-")),
        ([r"\["], const("-LSB-")),
        ([r"\]"], const("-RSB-")),
        ([r"\("], const("-LRB-")),
        ([r"\)"], const("-RRB-")),
        ([r"-+"], dashes),
        ([r"\.{3,5}", "(?:\\.[ \u00a0]){2,4}\\.", "[\x85\u2026]"], const("...")),
        (["@+", "#+", "_+"], keep),
        ([r"\*+", r"(?:\\\*){1,3}"], keep),
        ([INSENTP], keep),
        ([r"[?!]+"], keep),
        (["[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]"], keep),
        (["="], keep),
        (["/"], keep),
        ([(HTHING + r"\.", INSENTP)], soft),
        ([HTHING], soft),
        ([(THING + r"\.", INSENTP)], keep),
        ([THING], keep),
        ([(THINGA + r"\.", INSENTP)], amp),
        ([THINGA], amp),
        ([("'", "[A-Za-z][^ \t\n\r\u00a0]")], quotes(True)),
        ([REDAUX], quotes(False)),
        ([SREDAUX], quotes(False)),
        (QUOTES, quotes(False)),
        (["<<|>>"], keep),
        ([MISCSYMBOL], keep),
        ([f"\x00|{SPACE}+|[\u200b\u200e\u200f\ufeff]"], skip),
        ([NEWLINE], const(NEWLINE_TOKEN)),
        ([f"&{_ci('nbsp')};"], skip),
        (["[^\n]"], skip),  # Untokenizable: deleted (the jar logs it).
    ]
    # Alternatives in rule order; for speed, per first character (ASCII, or any other) only
    # those that can start with it.
    self._alternatives = []
    for alternatives, action in rules:
      for alt in alternatives:
        main, trail = alt if isinstance(alt, tuple) else (alt, "")
        pattern = f"({main}){trail}"
        self._alternatives.append((re.compile(pattern).match, action, _first_chars(pattern)))
    everything = tuple(a[:2] for a in self._alternatives)
    self._by_ascii = [tuple(a[:2] for a in self._alternatives if a[2] is None or c in a[2][0])
                      for c in range(128)]
    self._other = tuple(a[:2] for a in self._alternatives if a[2] is None or a[2][1])
    if any(a[2] is None for a in self._alternatives):
      self._by_ascii, self._other = [everything] * 128, everything

  def tokens(self, text: str) -> list[str]:
    """Tokens of `text` (NEWLINE_TOKEN for line breaks), before lower-casing."""
    # The jar sees UTF-16: a character outside the BMP is two surrogates (untokenizable
    # alone, kept inside e.g. a URL).
    wide = any(ord(c) > 0xFFFF for c in text)
    if wide:
      text = "".join(chr(0xD800 + ((ord(c) - 0x10000) >> 10)) + chr(0xDC00 + (ord(c) & 0x3FF))
                     if ord(c) > 0xFFFF else c for c in text)
    out, pos, n = [], 0, len(text)
    by_ascii, other = self._by_ascii, self._other
    while pos < n:
      c = ord(text[pos])
      best_len, best = 0, None
      for match, action in (by_ascii[c] if c < 128 else other):
        m = match(text, pos)  # Longest wins, then the earliest rule.
        if m is not None and m.end() - pos > best_len:
          best_len, best = m.end() - pos, (m.group(1), action)
      tok, consumed = best[1](best[0])
      pos += consumed
      if tok is not _SKIP:
        out.append(tok)
    if wide:
      out = [t if t is NEWLINE_TOKEN else
             t.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace") for t in out]
    return out


def _first_chars(pattern: str) -> tuple[frozenset[int], bool] | None:
  """(ASCII code points, whether any other) that can start a match; None if unknown.

  An over-approximation read off the parse tree (`re._parser`, private: any surprise gives
  None, which only costs speed).
  """
  try:
    from re import _constants as c  # pylint: disable=g-import-not-at-top
    from re import _parser  # pylint: disable=g-import-not-at-top
    all_ascii = frozenset(range(128))

    def charset(items):
      chars, other, negate = set(), False, False
      for op, av in items:
        if op is c.NEGATE:
          negate = True
        elif op is c.LITERAL:
          if av < 128:
            chars.add(av)
          other |= av >= 128
        elif op is c.RANGE:
          chars.update(range(av[0], min(av[1], 127) + 1))
          other |= av[1] >= 128
        else:
          raise ValueError(op)
      return (all_ascii - chars, True) if negate else (frozenset(chars), other)

    def seq(items):  # -> (chars, other, nullable)
      chars, other = set(), False
      for op, av in items:
        if op is c.LITERAL:
          f = ({av} if av < 128 else set(), av >= 128, False)
        elif op is c.NOT_LITERAL or op is c.ANY:
          f = (all_ascii, True, False)
        elif op is c.IN:
          f = (*charset(av), False)
        elif op is c.BRANCH:
          fs = [seq(b) for b in av[1]]
          f = (set().union(*(x[0] for x in fs)), any(x[1] for x in fs), any(x[2] for x in fs))
        elif op is c.SUBPATTERN:
          f = seq(av[3])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
          sub = seq(av[2])
          f = (sub[0], sub[1], sub[2] or av[0] == 0)
        elif op in (c.ASSERT, c.ASSERT_NOT, c.AT):
          f = (set(), False, True)
        else:
          raise ValueError(op)
        chars |= f[0]
        other |= f[1]
        if not f[2]:
          return chars, other, False
      return chars, other, True

    chars, other, nullable = seq(_parser.parse(pattern))
    return None if nullable else (frozenset(chars), other)
  except Exception:  # pylint: disable=broad-except
    return None


@functools.cache
def _lexer() -> _PtbLexer:
  return _PtbLexer()


def _clean(sentence: str) -> str:
  """Common to both tokenizers: lone surrogates -> U+FFFD, line breaks -> spaces."""
  s = str(sentence)
  if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
    s = s.encode("utf-8", "replace").decode("utf-8")
  return _LINE_BREAKS.sub(" ", s)


def _drop_punctuation(line: str) -> str:
  return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
  """Pure-Python equivalent of pycocoevalcap's PTBTokenizer on `sentences` (one list, in order).

  Like PTBTokenizer, the sentences are tokenized as one newline-joined text (so a line's end
  can depend on the start of the next one), tokens are lower-cased and the PUNCTUATIONS tokens
  dropped; each result is the kept tokens joined by single spaces.
  """
  lines, current = [], []
  for tok in _lexer().tokens("\n".join(_clean(s) for s in sentences)):
    if tok is NEWLINE_TOKEN:
      lines.append(current)
      current = []
    else:
      current.append(tok.lower())
  lines.append(current)
  if len(lines) != len(sentences):  # Only possible for an empty `sentences`.
    lines = lines[:len(sentences)]
  return [_drop_punctuation(" ".join(toks)) for toks in lines]
