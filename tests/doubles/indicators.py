"""Indicators that show nothing, for tests where the LEDs and buzzer are not the point."""


class QuietIndicators:
    """The Device's indicator interface (``show``, ``prompt``, ``status``) doing nothing."""

    def show(self, pattern: str) -> None:
        pass

    def prompt(self, stage: str) -> None:
        pass

    def status(self) -> dict:
        return {"state": "ok", "message": ""}
