"""The running device: the composition root (:mod:`.app`), the device the control API and
the loop talk to (:mod:`.device`), its session keeper (:mod:`.sessions`), enrolment and
broker probes for the console (:mod:`.enrol`) and the frame loop (:mod:`.loop`).

Nothing here parses command lines: that is :mod:`firmware.cli`.
"""
