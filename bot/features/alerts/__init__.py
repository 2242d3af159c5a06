"""Raising alerts, responses, /cancel, attachments: ``router`` (handlers) and ``payloads`` (its buttons)."""
