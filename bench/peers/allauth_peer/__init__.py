"""Peer 2: django-allauth headless (app client) with its JWT token strategy."""
