"""The user's profile: the display name."""

import unicodedata

from accounts.exceptions import InvalidName
from accounts.models import User

NAME_MAX_LENGTH = 150
# Unicode categories a name may not contain: controls (line breaks, tabs),
# line and paragraph separators, surrogates and private-use code points.
# Other format characters stay allowed (ZWJ and ZWNJ belong in emoji and in
# Persian or Indic names) except the ones that reorder text; so do code points
# this Python's Unicode database does not know yet (newer emoji).
_FORBIDDEN_CATEGORIES = {"Cc", "Zl", "Zp", "Cs", "Co"}
_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_printable_line(text: str) -> bool:
    """Whether ``text`` is one line of text that cannot reorder or break what is around it (in a
    page, an email, the admin): no controls, separators, surrogates, private use or direction controls."""
    return not any(char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text)


def clean_display_name(name: str) -> str:
    """The name as stored: one line of printable text, 1 to NAME_MAX_LENGTH
    characters; InvalidName (on the ``name`` field) otherwise.

    Names appear in pages and in emails; a line break or a bidirectional
    override in one would let its author write their own text into them.
    """
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise InvalidName(f"Enter a name of 1 to {NAME_MAX_LENGTH} characters.")
    if not is_printable_line(name):
        raise InvalidName
    return name


def update_profile(*, user: User, name: str) -> User:
    user.name = clean_display_name(name)
    user.save(update_fields=["name"])
    return user
