"""Deterministic orchestration only: the petition lifecycle, the daily digest, the arbitration track."""
