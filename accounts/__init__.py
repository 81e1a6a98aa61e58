"""Accounts: the custom user, sign-in flows, email-link tokens and their pages."""
