"""One file per architecture; each exposes `SPEC`, its builder and declared data (see spec.py)."""
