"""What every part of the Store shares: clock, config, seq counter, outbox, audit."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypeVar
from zoneinfo import ZoneInfo

from firmware.config import StoreConfig
from firmware.errors import StoreError
from firmware.store.atomic import atomic_write_bytes
from firmware.store.errors import StoreValueError
from firmware.store.ids import SeqCounter, local_day
from firmware.store.journal import Journal
from firmware.store.outbox import Outbox
from firmware.store.tinyfile import DIR_MODE, FILE_MODE, CorruptHook, dumps, intercept_writes

ID_RE_TEXT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
F = TypeVar("F", bound=Callable[..., Any])
SYSTEM = "system"  # the actor of changes nobody asked for (schedule, retention, sync)
logger = logging.getLogger(__name__)


def locks_itself(method: F) -> F:
    """Mark a read method that takes the Store lock itself, only for its short steps.

    The Store's proxy then calls it WITHOUT holding the lock, so a long read (filtering
    thousands of cached records) never makes writers (the device loop) wait.
    """
    method.locks_itself = True  # type: ignore[attr-defined]
    return method


class AuditLog(Protocol):
    """What the context needs of ``store.audit`` (``firmware.store.audit.Audit``, which
    itself builds on this module)."""

    def make(self, actor: str, action: str, target: object = None, details: dict | None = None) -> dict: ...

    def apply_add(self, rec: dict) -> None: ...


@dataclass
class StoreContext:
    """Shared services, built once by ``Store`` and handed to each part."""

    data_dir: Path
    clock: Callable[[], float]
    config: StoreConfig
    seq: SeqCounter
    on_corrupt: CorruptHook
    segment_max: int
    journal: Journal = field(default=None)  # type: ignore[assignment]
    outbox: Outbox = field(default=None)  # type: ignore[assignment]
    audit: AuditLog = field(default=None)  # type: ignore[assignment]
    appliers: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    on_commit: Callable[[], None] = lambda: None
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # days are local dates
    lock: threading.RLock = field(default_factory=threading.RLock)  # the Store's one lock
    version: int = 0  # + 1 at every committed step: derived views (reports) key on it
    default_basis: str | None = None  # privacy.default_basis: legal basis when none is named
    clock_synced: Callable[[], bool] = lambda: True  # is ``clock`` synchronised (NTP)?

    def day_of(self, epoch: float) -> str:
        """The device's local calendar day ``YYYY-MM-DD`` of a UNIX time (partition key)."""
        return local_day(epoch, self.zone)

    _pending: threading.local = field(default_factory=threading.local)  # audit of the running change

    def commit(self, ops: list[tuple[str, Any]]) -> None:
        """Make ``ops`` durable as ONE journal step, then apply them in memory. Inside
        :meth:`audited`, the first step also carries the audit record."""
        ops = self._with_audit(list(ops))
        self.journal.append([[name, arg] for name, arg in ops])
        self.apply(ops)
        self.version += 1
        self.on_commit()

    def _top(self) -> dict | None:
        stack = getattr(self._pending, "stack", None)
        return stack[-1] if stack else None

    def _with_audit(self, ops: list) -> list:
        top = self._top()
        if top is None or top["rec"] is None:
            return ops
        rec, top["rec"] = top["rec"], None
        return [("audit.add", rec), *ops]

    @contextmanager
    def audited(self, actor: str | None, action: str, target: object = None,
                details: dict | None = None) -> Iterator[None]:
        """Audit the change the block makes IN THE SAME JOURNAL STEP as its first write.

        The first file write (or :meth:`commit`) inside the block becomes one journal step
        ``[audit.add, file.put | ops]``: after a crash both or neither are there. A block
        that writes nothing (no change) leaves no audit entry. ``actor`` None: the actor
        of the enclosing audited change, else ``system``.
        """
        outer = self._top()
        actor = actor or (outer["actor"] if outer else SYSTEM)
        stack = getattr(self._pending, "stack", None)
        if stack is None:
            stack = self._pending.stack = []
        stack.append({"actor": actor, "rec": self.audit.make(actor, action, target, details)})
        try:
            with intercept_writes(self.journal_file_write):
                yield
        finally:
            stack.pop()

    @contextmanager
    def acting(self, actor: str) -> Iterator[None]:
        """Changes made by this thread inside the block are audited as ``actor``."""
        stack = getattr(self._pending, "stack", None)
        if stack is None:
            stack = self._pending.stack = []
        stack.append({"actor": check_text(actor, "actor", 80), "rec": None})
        try:
            yield
        finally:
            stack.pop()

    def audit_note(self, target: object = None, **details: Any) -> None:
        """Fill in the pending audit record (a target known only inside the change)."""
        top = self._top()
        if top is None or top["rec"] is None:
            return
        rec = top["rec"]
        if target is not None:
            rec["target"] = check_text(str(target), "target", 200)
        rec["details"] = check_extra({**rec["details"], **details}, "details")

    def journal_file_write(self, path: Path, data: dict) -> bool:
        """Write hook of every Store call: a data file's new content becomes a journal step
        (with the pending audit record, if any), then the file is written.

        Every write, audited or not, is journaled: replaying only some whole-file writes
        would roll a file back past a later direct write.
        """
        rel = Path(path).resolve().relative_to(self.data_dir.resolve()).as_posix()
        self.commit([("file.put", {"path": rel, "data": data})])
        return True

    def apply_file_put(self, change: dict) -> None:
        """Journal applier: write a whole data file (idempotent: the step's full content)."""
        path = (self.data_dir / change["path"]).resolve()
        if self.data_dir.resolve() not in path.parents:
            raise StoreError(f"journal names a file outside the data dir: {change['path']!r}")
        try:
            atomic_write_bytes(path, dumps(change["data"]), mode=FILE_MODE, dir_mode=DIR_MODE)
        except (StoreError, OSError) as exc:
            self.journal.pinned = True  # keep the step: the next start writes the file again
            logger.error("could not write %s after journaling it (%s); kept in the journal", path, exc)
            raise StoreError(f"cannot write {change['path']}: {exc}") from exc

    def apply(self, ops: list) -> None:
        """Run the appliers (also used to replay the journal at open)."""
        for name, arg in ops:
            self.appliers[name](arg)


def check_text(value: object, field_name: str, max_len: int = 200, empty: bool = False) -> str:
    """A non-empty (unless ``empty``) single-line string of at most ``max_len`` chars."""
    if not isinstance(value, str) or (not empty and not value.strip()) or len(value) > max_len \
            or "\n" in value or "\x00" in value:
        raise StoreValueError(f"{field_name}: expected a one-line text of 1..{max_len} "
                              f"characters, got {value!r:.60}", field_name)
    return value.strip()


def check_extra(value: object, field_name: str = "extra") -> dict:
    """None or a JSON-safe dict (copied)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StoreValueError(f"{field_name}: expected a dict", field_name)
    try:
        if len(dumps(value)) > 16_384:
            raise StoreValueError(f"{field_name}: larger than 16 KiB", field_name)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, StoreValueError):
            raise
        raise StoreValueError(f"{field_name}: not JSON-safe ({exc})", field_name) from None
    return dict(value)


def check_score(value: Any) -> float | None:
    """None or a finite float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StoreValueError(f"score: expected a finite number, got {value!r}", "score")
    return float(value)


def audited(action: str, target: str | None = None, actor: str = "actor") -> Callable[[F], F]:
    """Decorate a Store part's changing method: it takes ``actor=`` (default: the enclosing
    change's actor, else ``system``) and its change is audited in the same journal step
    (:meth:`StoreContext.audited`). ``target`` names the argument that identifies what
    changed; ``action`` may use ``{argument}`` placeholders."""

    def wrap(method: F) -> F:
        signature = inspect.signature(method)
        takes_actor = actor in signature.parameters

        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            who = kwargs.get(actor) if takes_actor else kwargs.pop(actor, None)
            bound = signature.bind_partial(self, *args, **kwargs).arguments
            what = bound.get(target) if target else None
            who = bound.get(actor, who) if takes_actor else who
            with self._ctx.audited(who, action.format(**bound), what):
                return method(self, *args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap
