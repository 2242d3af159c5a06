"""Joining, binding a group chat, and role-aware /help: ``router``."""
