"""Case handling by the head, grid workers and police: ``router`` (handlers) and ``payloads`` (buttons)."""
