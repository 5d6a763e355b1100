"""The live view: an HTTP server beside the pipeline, one sink among the others.

Endpoints (GET and HEAD):

- ``/``: a page with the live picture, the skeleton drawn on it, and the current stats (plain
  HTML and JavaScript, nothing loaded from elsewhere).
- ``/stream.mjpg``: MJPEG (``multipart/x-mixed-replace``), query parameters as Frigate's
  ``/api/<camera>``: ``fps`` (default 5, at most 30), ``h`` or ``height`` (pixels, default the
  frame's own; never enlarged), ``skeleton=0`` for the bare picture. At most ``http.max_streams``
  at once; a viewer beyond that gets 503.
- ``/snapshot.jpg``: the next frame as one JPEG (same ``h``/``height`` and ``skeleton``).
- ``/api/stats``: the daemon's stats document (as on the stats topic), 503 before the first one.
- ``/api/status``: ``online``, ``degraded: <why>`` or ``offline``, as the status topic.
- ``/metrics``: Prometheus metrics (``metrics.py``).
- ``/healthz``: 200 while the status is ``online`` and frames flow (one within the last
  ``STALE_S`` seconds), else 503 (starting, degraded, stalled, stopping); a small JSON body says
  which. It needs no password, so a health checker needs none; it tells nothing but that.

It costs nothing while nobody watches: ``frame()`` runs in the pipeline's thread and only counts
and keeps references. Only when a stream viewer is due a frame or a snapshot is asked for does it
copy the image (valid only during the call); drawing the skeleton, scaling and JPEG encoding run in
the viewer's own HTTP thread, at the viewer's frame rate, and one encoded frame serves every viewer
asking for the same size.

The server is the standard library's ``ThreadingHTTPServer``, not a web framework: a handful of
read-only endpoints need no more, it is light on a Raspberry Pi, and it adds no dependency. Each
connection has its own thread; connections are bounded (``http.max_streams`` + ``SPARE_CONNECTIONS``) and time out
(``TIMEOUT_S``), and ``stop()`` ends the streams and closes the socket.

Listening beyond 127.0.0.1 needs HTTP basic authentication or ``http.anonymous = true``
(``config.py``'s rules); the password is read as the MQTT one is (file, systemd credential,
environment), compared in constant time, and never logged nor shown.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from ...pose import Pose, draw_poses
from ..config import Config, ConfigError, HttpConfig, is_loopback, read_password
from .base import FrameResult, Sink

log = logging.getLogger(__name__)

STALE_S = 10.0  # /healthz: no frame for this long is unhealthy
FRAME_WAIT_S = 5.0  # a snapshot waits this long for a frame, then serves the last one kept
TIMEOUT_S = 30.0  # a client silent (or not reading) this long is disconnected
SPARE_CONNECTIONS = 16  # connections served at once beyond the streams; more are closed at once
DEFAULT_FPS = 5.0
MAX_FPS = 30.0
MIN_HEIGHT = 16
BOUNDARY = "frame"
REALM = "blazepose-edge"


@dataclass(frozen=True)
class Kept:
    """A frame copied for the viewers."""

    seq: int
    index: int
    ts: float
    image: np.ndarray  # a copy, owned here
    poses: list[Pose]


def _page() -> bytes:
    return resources.files(__package__).joinpath("live.html").read_bytes()


def _csp(page: bytes) -> str:
    """A Content-Security-Policy allowing the page's own inline style and script (by hash), and
    requests to this server only."""

    def digest(tag: bytes) -> str:
        start = page.index(b">", page.index(b"<" + tag)) + 1
        body = page[start : page.index(b"</" + tag, start)]
        return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"

    return (
        f"default-src 'none'; img-src 'self'; connect-src 'self'; "
        f"style-src {digest(b'style')}; script-src {digest(b'script')}; base-uri 'none'; "
        "form-action 'none'"
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    view: LiveView

    def __init__(self, address, family, connections: int):
        self.address_family = family
        self._slots = threading.BoundedSemaphore(connections)
        super().__init__(address, _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:  # "::" takes IPv4 too where the system allows it
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.view.refused_busy += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        log.debug("http: error serving %s", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "blazepose-edge"
    sys_version = ""
    timeout = TIMEOUT_S

    # --- plumbing ---------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        # the request line and status only, at debug; never a header (the password is in one)
        log.debug("http: %s %s", self.address_string(), format % args)

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not self._head:
            self.wfile.write(body)

    def _json(self, status: int, doc) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        self._send(status, body, "application/json")

    def _text(self, status: int, text: str, headers: dict | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", headers)

    def _authorised(self) -> bool:
        view = self.server.view
        if view.credentials is None:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except ValueError:
            decoded = b""
        # both sides hashed first: equal lengths, so compare_digest's time says nothing
        ok = scheme.lower() == "basic" and hmac.compare_digest(
            hashlib.sha256(decoded).digest(), view.credentials
        )
        if not ok:
            view.refused_auth(self.client_address[0], bool(given))
        return ok

    def _dispatch(self, head: bool) -> None:
        self._head = head
        view = self.server.view
        url = urlsplit(self.path)
        route = url.path
        view.requests += 1
        if route == "/healthz":  # no password: a health checker learns only this
            healthy, doc = view.health()
            self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, doc)
            return
        if not self._authorised():
            self._text(
                HTTPStatus.UNAUTHORIZED,
                "401 unauthorised: this live view needs its user name and password",
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
            return
        try:
            query = parse_qs(url.query, max_num_fields=10)
            handler = {
                "/": self._index,
                "/index.html": self._index,
                "/stream.mjpg": self._stream,
                "/snapshot.jpg": self._snapshot,
                "/api/stats": self._stats,
                "/api/status": self._status,
                "/metrics": self._metrics,
            }.get(route)
            if handler is None:
                self._text(HTTPStatus.NOT_FOUND, f"404 not found: {route}")
                return
            handler(query)
        except _BadQuery as exc:
            self._text(HTTPStatus.BAD_REQUEST, f"400 bad request: {exc}")

    # --- endpoints --------------------------------------------------------------------------

    def _index(self, query) -> None:
        view = self.server.view
        self._send(HTTPStatus.OK, view.page, "text/html; charset=utf-8",
                   {"Content-Security-Policy": view.csp})  # fmt: skip

    def _stats(self, query) -> None:
        stats = self.server.view.latest_stats
        if stats is None:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no stats yet"})
        else:
            self._json(HTTPStatus.OK, stats)

    def _status(self, query) -> None:
        self._text(HTTPStatus.OK, self.server.view.status)

    def _metrics(self, query) -> None:
        body, ctype = self.server.view.metrics.render(self.headers.get("Accept"))
        self._send(HTTPStatus.OK, body, ctype)

    def _snapshot(self, query) -> None:
        view = self.server.view
        height, skeleton = _height(query), _flag(query, "skeleton", True)
        if self._head:
            self._send(HTTPStatus.OK, b"", "image/jpeg")
            return
        kept = view.next_frame(after=view.seq, timeout=FRAME_WAIT_S) or view.kept
        if kept is None:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "503 no frame yet")
            return
        self._send(HTTPStatus.OK, view.jpeg(kept, height, skeleton), "image/jpeg",
                   {"X-Frame-Index": str(kept.index)})  # fmt: skip

    def _stream(self, query) -> None:
        view = self.server.view
        fps = _number(query, "fps", DEFAULT_FPS, 0.1, MAX_FPS)
        height, skeleton = _height(query), _flag(query, "skeleton", True)
        if not view.enter_stream():
            self._text(HTTPStatus.SERVICE_UNAVAILABLE,
                       f"503 busy: {view.cfg.max_streams} viewers already (http.max_streams)",
                       {"Retry-After": "5"})  # fmt: skip
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self._head:
                return
            view.track(self.connection)
            period = 1.0 / fps
            due = time.monotonic()
            last = -1
            while not view.stopping.is_set():
                delay = due - time.monotonic()
                if delay > 0 and view.stopping.wait(delay):
                    break
                if self._gone():  # not a frame more for a viewer who left
                    break
                # a frame taken after it was due (another viewer's may be older)
                kept = view.next_frame(after=max(last, view.seq), timeout=1.0)
                if kept is None:
                    continue  # nothing new (the camera is being reopened); keep the viewer
                jpeg = view.jpeg(kept, height, skeleton)
                self.wfile.write(
                    b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n"
                )
                self.wfile.flush()
                view.stream_frames += 1
                last = kept.seq
                due = max(due + period, time.monotonic() - period)
        except OSError:  # the viewer went away (or stop() closed the connection)
            pass
        finally:
            view.untrack(self.connection)
            view.leave_stream()

    def _gone(self) -> bool:
        """Whether the viewer closed the connection (it sends nothing after its request)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            return True


class _BadQuery(ValueError):
    pass


def _number(query, name: str, default: float, low: float, high: float) -> float:
    if name not in query:
        return default
    try:
        value = float(query[name][-1])
    except ValueError:
        raise _BadQuery(f"{name} must be a number") from None
    if not low <= value <= high:  # written so NaN is refused
        raise _BadQuery(f"{name} must be {low:g}..{high:g}")
    return value


def _height(query) -> int | None:
    name = "height" if "height" in query else "h"
    if name not in query:
        return None
    return int(_number(query, name, 0, MIN_HEIGHT, 8192))


def _flag(query, name: str, default: bool) -> bool:
    if name not in query:
        return default
    return query[name][-1].lower() not in ("0", "false", "no", "off")


class LiveView(Sink):
    """The HTTP sink. It binds its socket when made (so a port that is taken fails the start,
    exit 2, before the pipeline starts) and serves from ``start()`` to ``stop()``."""

    name = "http"

    def __init__(self, cfg: Config):
        from .metrics import Metrics  # prometheus_client: imported only when serving

        self.cfg: HttpConfig = cfg.http
        self.device = cfg.device_id
        self.credentials: bytes | None = None
        if self.cfg.username:
            password = read_password(self.cfg, "http")
            if not password:
                raise ConfigError(
                    "http.username is set but no password was found: give http.password_file, "
                    f"the systemd credential http_password, or ${self.cfg.password_env}"
                )
            self.credentials = hashlib.sha256(f"{self.cfg.username}:{password}".encode()).digest()
            del password
        elif not is_loopback(self.cfg.host):
            log.warning(
                "http: listening on %s without a password (http.anonymous): anyone who can reach "
                "port %d sees the camera",
                self.cfg.host, self.cfg.port,
            )  # fmt: skip
        self.page = _page()
        self.csp = _csp(self.page)
        self.status = "starting"
        self.latest_stats: dict | None = None
        self.stopping = threading.Event()
        # frames: frame() publishes under the condition; viewers wait on it
        self._cond = threading.Condition()
        self._wanted = False  # a viewer is due a frame: frame() copies the next one
        self.seq = 0  # frames kept so far
        self.kept: Kept | None = None
        self._jpegs: dict[tuple, bytes] = {}  # (seq, height, skeleton) -> JPEG, newest seq only
        self._jpeg_seq = 0
        self._jpeg_lock = threading.Lock()
        # counters (the pipeline's thread writes the frame ones; readers tolerate a stale value)
        self.frames = 0
        self.people = 0
        self.last_frame = 0.0  # time.monotonic() of the last frame, 0 before the first
        self.copies = 0
        self.encoded = 0
        self.requests = 0
        self.stream_frames = 0
        self.refused_busy = 0
        self.refused = 0
        self._refusal_logged = 0.0
        self._streams = 0
        self._streams_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self.metrics = Metrics(self)
        host = self.cfg.host.strip().strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.server = _Server(
                (host, self.cfg.port), family, self.cfg.max_streams + SPARE_CONNECTIONS
            )
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigError(
                f"http.port: cannot listen on {self.cfg.host}:{self.cfg.port}: {why}"
            ) from None
        self.server.view = self
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.cfg.host.strip()
        if host in ("0.0.0.0", "::", "[::]"):
            host = socket.gethostname()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    # --- the Sink interface (the daemon's threads) ---------------------------------------------

    def start(self) -> None:
        self.status = "online"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="http",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        log.info("live view on %s (metrics: %smetrics)", self.url, self.url)

    def frame(self, result: FrameResult) -> None:
        self.frames += 1
        self.people = len(result.poses)
        self.last_frame = time.monotonic()
        self.metrics.keep(result.timings)
        if self._wanted:  # someone watches: copy the image now, while it is valid
            self._keep(result)

    def set_status(self, status: str) -> None:
        self.status = status

    def stats(self, stats: dict) -> None:
        self.latest_stats = stats
        self.metrics.drain()

    def report(self) -> dict:
        return {"streams": self._streams, "requests": self.requests,
                "frames_encoded": self.encoded}  # fmt: skip

    def stop(self) -> None:
        self.status = "offline"
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self.server.shutdown()  # the accept loop (within its 0.5 s poll)
            self._thread.join(timeout=2.0)
        with self._streams_lock:
            connections = list(self._connections)
        for conn in connections:  # unblock a stream stuck writing to a slow viewer
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2.0
        while self._streams and time.monotonic() < deadline:
            time.sleep(0.02)
        self.server.server_close()
        self.metrics.drain(final=True)

    # --- frames for the viewers ----------------------------------------------------------------

    def _keep(self, result: FrameResult) -> None:
        image = result.image.copy()  # the buffer is reused after this call
        with self._cond:
            self.seq += 1
            self.kept = Kept(self.seq, result.index, result.ts, image, list(result.poses))
            self._wanted = False
            self.copies += 1
            self._cond.notify_all()

    def next_frame(self, after: int, timeout: float) -> Kept | None:
        """The first frame kept after ``after`` (a ``seq``), asking the pipeline for one; None
        if none came within ``timeout`` or the server is stopping."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.kept is None or self.kept.seq <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping.is_set():
                    return None
                self._wanted = True
                self._cond.wait(remaining)
            return self.kept

    def jpeg(self, kept: Kept, height: int | None, skeleton: bool) -> bytes:
        """``kept`` drawn, scaled and encoded (in the caller's thread); shared by the viewers
        asking for the same frame and size."""
        h, w = kept.image.shape[:2]
        if height is not None and height >= h:
            height = None  # never enlarged
        key = (kept.seq, height, skeleton)
        with self._jpeg_lock:
            cached = self._jpegs.get(key)
        if cached is not None:
            return cached
        image = draw_poses(kept.image, kept.poses) if skeleton else kept.image
        if height is not None:
            width = max(1, round(w * height / h))
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:  # pragma: no cover - a BGR uint8 image always encodes
            raise RuntimeError("JPEG encoding failed")
        data = buf.tobytes()
        with self._jpeg_lock:
            self.encoded += 1
            if kept.seq > self._jpeg_seq:  # a newer frame: the older encodings are done with
                self._jpeg_seq, self._jpegs = kept.seq, {}
            if kept.seq == self._jpeg_seq:
                self._jpegs[key] = data
        return data

    # --- the HTTP threads' bookkeeping ---------------------------------------------------------

    def enter_stream(self) -> bool:
        with self._streams_lock:
            if self._streams >= self.cfg.max_streams or self.stopping.is_set():
                return False
            self._streams += 1
            return True

    def leave_stream(self) -> None:
        with self._streams_lock:
            self._streams -= 1

    @property
    def streams(self) -> int:
        return self._streams

    def track(self, conn: socket.socket) -> None:
        with self._streams_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._streams_lock:
            self._connections.discard(conn)

    def refused_auth(self, client: str, tried: bool) -> None:
        """A request without the right credentials: counted; logged at most once a minute,
        naming the client, never what it sent."""
        self.refused += 1
        now = time.monotonic()
        if tried and now - self._refusal_logged > 60:
            self._refusal_logged = now
            log.warning(
                "http: refused %s: wrong user name or password (%d refused so far)",
                client, self.refused,
            )  # fmt: skip

    def health(self) -> tuple[bool, dict]:
        """(healthy, the /healthz body)."""
        age = time.monotonic() - self.last_frame if self.last_frame else None
        status = self.status.split(":", 1)[0]
        if status != "online":
            why = status
        elif age is None:
            why = "no frame yet"
        elif age > STALE_S:
            why = f"no frame for {age:.0f} s"
        else:
            why = None
        doc = {"healthy": why is None, "status": status,
               "last_frame_age_s": None if age is None else round(age, 3)}  # fmt: skip
        if why:
            doc["reason"] = why
        return why is None, doc
