"""The accounts API views, one module per area; `accounts/api/urls.py` maps them to paths."""
