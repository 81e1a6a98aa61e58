"""The business logic of every account flow: plain keyword-only functions shared by pages and API."""
