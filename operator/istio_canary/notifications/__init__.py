"""Notices of releases to chat rooms and webhooks (see notice.py, formats.py, sender.py)."""
