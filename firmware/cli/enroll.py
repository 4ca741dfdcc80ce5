"""`rollcall enroll`: enrol people from photos, one person or many.

- ``rollcall enroll --person ID --name NAME IMG...`` prints one line per photo (accepted /
  rejected / duplicate, with the reason) and stores the accepted faces;
- every run needs the legal basis for keeping the faces (``--basis consent|contract|
  legal_obligation``, recorded with ``--by`` and the time; or ``privacy.default_basis``);
- ``rollcall enroll --csv people.csv --photos DIR`` enrols every row of the CSV (see
  :mod:`firmware.domain.bulk` for the columns), shows a progress bar on stderr and prints
  one report line per row (ok / already enrolled / no face / two faces / different person
  / duplicate ...). Running it again changes nothing.

A photo whose face looks like ANOTHER enrolled person (at the door's accept threshold) is
refused with that person's name; ``--confirm-duplicates`` enrols it anyway. Run it while
the firmware is stopped: the firmware is the single writer of the data dir (the console
does the same through the running firmware). Project modules are imported lazily so that
``rollcall --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

BAR_WIDTH = 30


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--person", help="person id (letters, digits, . _ -)")
    parser.add_argument("--name", help="the person's name as shown in the console")
    parser.add_argument("--basis", choices=["consent", "contract", "legal_obligation"],
                        help="legal basis for keeping their face data, recorded with --by and the time "
                             "(required unless privacy.default_basis is set in the config)")
    parser.add_argument("--by", default=None, help="who recorded the basis (default: $USER)")
    parser.add_argument("--csv", type=Path, help="bulk: a CSV with the columns name, photos "
                                                 "[, person_id, external_id]")
    parser.add_argument("--photos", type=Path, help="bulk: the folder the CSV's photo names are in")
    parser.add_argument("--confirm-duplicates", action="store_true",
                        help="enrol a face even when it looks like another enrolled person")
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    parser.add_argument("--data-dir", type=Path, help="data dir (default: paths.data_dir of the config)")
    parser.add_argument("--models-dir", type=Path, help="built models (default: paths.models_dir of the config)")
    parser.add_argument("--embedder", help="embedder model id (default: recognition.embedder of the config)")
    parser.add_argument("images", nargs="*", type=Path, help="photos (JPEG or PNG), one person each")
    parser.set_defaults(func=run)


def _read(paths: list[Path]) -> tuple[list[Path], list[bytes]]:
    """(readable paths, their contents); unreadable files are reported and left out."""
    ok, contents = [], []
    for path in paths:
        try:
            contents.append(path.read_bytes())
            ok.append(path)
        except OSError as exc:
            print(f"rejected   {path}: cannot read it ({exc.strerror})")
    return ok, contents


def format_result(path: Path, result) -> str:
    """One human line for a photo's verdict (a :class:`~firmware.domain.enrolment.PhotoResult`)."""
    if result.status == "accepted":
        extra = f" (similarity to the other photos {result.score:.2f})" if result.score is not None else ""
        return f"accepted   {path}{extra}"
    return f"{result.status:<10} {path}: {result.message}"


class Progress:
    """A plain-text progress bar: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} rows"
        if self.tty:
            self.out.write("\r" + line + ("\n" if done == total else ""))
        elif 10 * done // max(total, 1) != self._last_decile or done == total:
            self._last_decile = 10 * done // max(total, 1)
            self.out.write(line + "\n")
        self.out.flush()


def _check_args(args: argparse.Namespace) -> str | None:
    if args.csv:
        if not args.photos:
            return "--csv needs --photos DIR (the folder with the photos the CSV names)"
        if args.person or args.images:
            return "use either --csv/--photos or --person/--name IMG..., not both"
        return None
    if not (args.person and args.name and args.images):
        return "give --person ID --name NAME and at least one photo, or --csv FILE --photos DIR"
    return None


def run(args: argparse.Namespace) -> int:
    from firmware.config import load_config
    from firmware.runtime.enrol import Enroller
    from firmware.store import Store

    problem = _check_args(args)
    if problem:
        print(f"rollcall enroll: {problem}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    consent = _consent(args, config.privacy.default_basis)
    if consent is None:
        print("rollcall enroll: a legal basis for the face data is required: pass --basis "
              "consent|contract|legal_obligation (or set privacy.default_basis)", file=sys.stderr)
        return 2
    with Store(args.data_dir or config.paths.data_dir, privacy=config.privacy) as store:
        enroller = Enroller(config, store, models_dir=args.models_dir, model_id=args.embedder)
        try:
            return _bulk(args, enroller, store, consent) if args.csv else _single(args, enroller, store, consent)
        finally:
            enroller.close()


def _consent(args: argparse.Namespace, default_basis: str | None) -> dict | None:
    """``{"basis", "by"}`` for this run (None: no basis given and none configured)."""
    basis = args.basis or default_basis
    return {"basis": basis, "by": args.by or os.environ.get("USER") or "cli"} if basis else None


def _lacks_basis(person: dict) -> bool:
    consent = person.get("consent") or {}
    return not consent.get("basis") or bool(consent.get("withdrawn_at"))


def _single(args: argparse.Namespace, enroller, store, consent: dict) -> int:
    """One person from the photos on the command line."""
    paths, contents = _read(args.images)
    existing = store.people.get(args.person) is not None and bool(store.people.photos(args.person))
    results = enroller.check(args.person, contents, confirm_duplicate=args.confirm_duplicates)
    person = store.people.get(args.person)
    if any(r.accepted for r in results) and person is None:
        store.people.add(args.person, args.name, consent=consent)
        print(f"new person {args.person} ({args.name}), basis {consent['basis']} recorded by {consent['by']}")
    elif person is not None and args.basis and _lacks_basis(person):
        store.people.set_consent(args.person, consent["basis"], consent["by"])
    enroller.save(args.person, results)
    for path, result in zip(paths, results):
        print(format_result(path, result))
    accepted = sum(r.accepted for r in results)
    print(f"{accepted} of {len(args.images)} photos enrolled for {args.person} with {enroller.model_id}")
    return 0 if accepted or existing else 1


class StoreTarget:
    """:class:`~firmware.domain.bulk.BulkTarget` straight on the store (the CLI)."""

    def __init__(self, enroller, store, consent: dict) -> None:
        self.enroller, self.store, self.consent = enroller, store, consent

    def exists(self, person_id: str) -> bool:
        return self.store.people.get(person_id) is not None

    def create(self, person_id: str, name: str, external_id: str | None) -> None:
        self.store.people.add(person_id, name, external_id=external_id, consent=self.consent)

    def delete(self, person_id: str) -> None:
        self.store.people.delete(person_id)

    def enrol(self, person_id: str, photos: list[bytes], confirm_duplicate: bool) -> list[dict]:
        return self.enroller.enrol_photos(person_id, photos, confirm_duplicate=confirm_duplicate)


def _photo_reader(folder: Path):
    root = folder.resolve()

    def read(name: str) -> bytes:
        path = (root / name).resolve()
        if root not in path.parents:
            raise ValueError("outside the photo folder")
        return path.read_bytes()
    return read


def _bulk(args: argparse.Namespace, enroller, store, consent: dict) -> int:
    """Every row of ``--csv``; exit 0 when no row failed (``ok`` / ``already`` only)."""
    from firmware.domain import bulk

    try:
        rows = bulk.parse_csv(args.csv.read_bytes())
    except (OSError, bulk.BulkError) as exc:
        print(f"rollcall enroll: {exc}", file=sys.stderr)
        return 2
    if not args.photos.is_dir():
        print(f"rollcall enroll: {args.photos} is not a folder", file=sys.stderr)
        return 2
    reports = bulk.run_bulk(rows, _photo_reader(args.photos), StoreTarget(enroller, store, consent),
                            confirm_duplicate=args.confirm_duplicates, progress=Progress())
    for report in reports:
        print(f"line {report.line:<4} {report.person_id:<24} {report.label:<17} {report.message}")
    counts = bulk.summary(reports)
    print(", ".join(f"{n} {bulk.LABELS.get(s, s)}" for s, n in sorted(counts.items())) + f" ({len(reports)} rows)")
    return 0 if set(counts) <= {"ok", "already"} else 1
