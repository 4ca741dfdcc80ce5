"""Rollcall: control."""
