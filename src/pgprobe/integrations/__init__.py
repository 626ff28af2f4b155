"""Integrations with other libraries' training loops (each an optional dependency, imported
only when its integration is used): ``pgprobe.integrations.sb3``."""
