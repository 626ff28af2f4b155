"""Policy updates: PPO (clipped surrogate, eq. 17) and TRPO (eq. 16 via natural gradient)."""
