"""The JSON API of accounts for the single-page app (Django REST framework)."""
