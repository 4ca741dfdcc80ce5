"""Rollcall web console: a Bottle app that talks to the firmware only over its control socket."""
