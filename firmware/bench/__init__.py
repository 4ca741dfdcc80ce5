"""Rollcall: bench."""
