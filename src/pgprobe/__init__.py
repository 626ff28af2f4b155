"""pgprobe: probes of deep policy-gradient agents (Ilyas et al., ICLR 2020)."""
__version__ = "0.1.0"
