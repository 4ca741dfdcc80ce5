"""Rollcall: hal."""
