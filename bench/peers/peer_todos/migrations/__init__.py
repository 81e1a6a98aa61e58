"""Migrations of the peers' todo app."""
