"""Peer 1: the stock djangorestframework-simplejwt stack."""
