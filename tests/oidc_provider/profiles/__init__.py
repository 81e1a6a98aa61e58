"""The per-user flags of the test provider's users that Django's User lacks (the ``email_verified`` claim, a name)."""
