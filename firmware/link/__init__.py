"""Rollcall: link."""
