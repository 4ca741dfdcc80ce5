"""Rollcall: inference."""
