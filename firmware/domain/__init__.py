"""Rollcall: domain."""
