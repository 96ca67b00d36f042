"""Webhooks: which calls are due and what they send (``plan``, pure), and the HTTP call (``caller``)."""
