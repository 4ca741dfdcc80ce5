"""What every control-API route shares: JSON bodies and fields, errors as
``{"error", "field"}``, the body-size limit and the acting user. The app itself is built
in :mod:`firmware.control.api`; routes live in ``routes_*.py`` and import only this.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

import bottle

from firmware.control.client import ACTOR_HEADER
from firmware.errors import CommandError, EnrolmentError, ImageError, SessionError, StoreError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 48 * 1024 * 1024  # photos travel base64-encoded in JSON
MAX_JSON_BYTES = 1024 * 1024


class ApiError(Exception):
    """An error with an HTTP status, a message for the user and the offending field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def must(value: Any, what: str) -> Any:
    """Return ``value`` or raise a 404 when the store answered None."""
    if value is None:
        raise not_found(what)
    return value


def _error_body(status: int, message: str, field: str | None = None) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    return json.dumps({"error": message, "field": field})


def _map_exception(exc: Exception) -> tuple[int, str, str | None]:
    if isinstance(exc, ApiError):
        return exc.status, exc.message, exc.field
    if isinstance(exc, SessionError):
        return 409, str(exc), None
    if isinstance(exc, (CommandError, EnrolmentError, ImageError)):
        return 400, str(exc), getattr(exc, "field", None)
    if isinstance(exc, LookupError):
        message = str(exc.args[0]) if exc.args else "not found"
        return 404, message, getattr(exc, "field", None)
    if isinstance(exc, (ValueError, TypeError)):
        return 400, str(exc) or "invalid request", getattr(exc, "field", None)
    if isinstance(exc, StoreError):
        logger.error("store error: %s", exc)
        return 503, str(exc), None
    logger.exception("control API internal error")
    return 500, "internal error in the firmware (see its log)", None


def json_errors_plugin(callback: Callable) -> Callable:
    """Turn every exception into a JSON 4xx/5xx body; never a traceback."""

    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except bottle.HTTPResponse:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a JSON answer
            status, message, field = _map_exception(exc)
            return _error_body(status, message, field)

    return wrapper


def limit_body() -> None:
    length = bottle.request.content_length
    if length > MAX_BODY_BYTES:
        raise bottle.HTTPResponse(_error_body(413, f"request body too large ({length} bytes; "
                                                   f"limit {MAX_BODY_BYTES})"), status=413)


MAX_JSON_DEPTH = 32
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET_RE = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text (strings skipped); no parse, no recursion."""
    depth = deepest = 0
    for bracket in _BRACKET_RE.findall(_STRING_RE.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_json(limit: int = MAX_JSON_BYTES) -> dict:
    """The request body as a JSON object (at most ``limit`` bytes)."""
    length = bottle.request.content_length
    if length > limit:
        raise ApiError(413, f"request body too large ({length} bytes; limit {limit})")
    raw = bottle.request.body.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f"request body too large (limit {limit} bytes)")
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "request body is not valid JSON (not UTF-8)") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def field(data: dict, name: str, kind: type | tuple = str, *, required: bool = True,
          default: Any = None) -> Any:
    """One typed field of a JSON body; a clear 400 names the field when it is wrong."""
    if name not in data or data[name] is None:
        if required:
            raise ApiError(400, f"missing field {name!r}", name)
        return default
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"field {name!r} has the wrong type", name)
    if isinstance(value, str) and required and not value.strip():
        raise ApiError(400, f"field {name!r} must not be empty", name)
    return value


def query(name: str) -> str | None:
    value = bottle.request.query.getunicode(name)
    return value if value not in (None, "") else None


def request_actor() -> str:
    """Who is acting: the console user named in ``X-Rollcall-Actor`` (the socket is
    reachable only by the console's group), else ``console``."""
    name = (bottle.request.get_header(ACTOR_HEADER) or "").strip()
    if not name or len(name) > 80 or not name.isprintable():
        return "console"
    return name


def actor_plugin(store: Any) -> Callable:
    """Run every route inside ``store.acting(actor)``: the store audits each change it
    makes with the console user, in the same journal step as the change."""

    def apply(callback: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            with store.acting(request_actor()):
                return callback(*args, **kwargs)

        return wrapper

    return apply


def json_default_errors(app: bottle.Bottle) -> None:
    def handler(error: bottle.HTTPError) -> str:
        message = error.body if isinstance(error.body, str) and error.body else error.status_line
        return _error_body(error.status_code, str(message))

    for code in (400, 404, 405, 413, 500):
        app.error_handler[code] = handler
