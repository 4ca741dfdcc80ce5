"""The running device: the composition root (:mod:`.app`), the device the control API and
the loop talk to (:mod:`.device`), its session keeper (:mod:`.sessions`), the one enrolment
path (:mod:`.enrol`) and enrolment at the door (:mod:`.capture`), the broker probe for the
console (:mod:`.probe`) and the frame loop (:mod:`.loop`).

Nothing here parses command lines: that is :mod:`firmware.cli`.
"""
