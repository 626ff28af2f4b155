"""Probes: one module per measurement of a checkpoint (``pgprobe probe NAME``)."""
