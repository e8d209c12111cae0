"""One text, two spellings: the forms text is stored, compared and measured in.

- Free text (titles, descriptions, names, messages) is NFC: "é" typed as one character or as
  "e" and a combining accent (macOS, some keyboards and pastes) is one string, so it is equal,
  searchable and counted alike whichever device typed it. NFC changes no character a reader
  can tell apart; compatibility forms (full-width letters, ligatures, superscripts) are kept,
  since in running text they may be meant.
- Labels compared as keys (tags) are NFKC in lower case, without leading or trailing
  whitespace or invisible format characters: "work" in full-width letters and "work", the
  micro sign and the Greek mu, "work" + U+200B and "work" are one label. Lower case, not
  full case folding: a label is also shown, and folding would show "straße" as "strasse"
  and a Greek word's final sigma as the other sigma.

A number typed into a form, a query or a header is ASCII digits, read by ``ascii_number``:
``str.isdigit`` also says yes to "²" (which ``int`` refuses) and to Arabic-Indic digits
(which it reads).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import BeforeValidator


def composed(value: Any) -> Any:
    """``value`` in NFC when it is text; anything else is left to the type's own check."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


# Written after a type's ``StringConstraints`` in ``Annotated``: a before-validator runs first
# wherever it stands, so bounds count the stored form, but one written before the constraints
# would have them check length before ``strip_whitespace``.
Composed = BeforeValidator(composed)


def _invisible_or_space(character: str) -> bool:
    return character.isspace() or unicodedata.category(character) == "Cf"


def label_key(value: str) -> str:
    """The form a label is stored, shown and compared in: NFKC, lower case, edges trimmed of
    whitespace and invisible format characters (zero-width space, BOM, soft hyphen, joiners);
    those inside are kept (a joiner inside an emoji sequence or a Persian word is meant)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).lower())
    start, end = 0, len(folded)
    while start < end and _invisible_or_space(folded[start]):
        start += 1
    while end > start and _invisible_or_space(folded[end - 1]):
        end -= 1
    return folded[start:end]


def labelled(value: Any) -> Any:
    """``label_key`` as a pydantic before-validator: non-text is left to the type's check."""
    return label_key(value) if isinstance(value, str) else value


LabelKey = BeforeValidator(labelled)  # placed as ``Composed``


def ascii_number(value: object, *, digits: int) -> int | None:
    """``value`` read as a whole number when it is 1 to ``digits`` ASCII digits, else None."""
    if isinstance(value, str) and 0 < len(value) <= digits and value.isascii() and value.isdigit():
        return int(value)
    return None
