"""The gmn tests share `tiny_zoo` from tests/conftest.py (built once per run)."""
