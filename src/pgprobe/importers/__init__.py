"""Importers: agents trained by other libraries (Stable-Baselines3 / RL Zoo, CleanRL)
written as ordinary pgprobe checkpoints (``pgprobe.checkpoint``), with provenance."""
