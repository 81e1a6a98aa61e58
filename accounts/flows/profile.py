"""The user's profile: the display name."""

from accounts.exceptions import AccountError
from accounts.models import User

NAME_MAX_LENGTH = 150


def clean_display_name(name: str) -> str:
    """The name as stored, or an AccountError on the ``name`` field."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise AccountError(f"Enter a name of 1 to {NAME_MAX_LENGTH} characters.", field="name")
    return name


def update_profile(*, user: User, name: str) -> User:
    user.name = clean_display_name(name)
    user.save(update_fields=["name"])
    return user
