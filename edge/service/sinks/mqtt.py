"""MQTT publisher (paho-mqtt 2.x).

Topics under ``<prefix>/<device-id>/``:

- ``pose``: one message per processed frame (QoS ``mqtt.qos_pose``, not retained).
- ``status``: ``online`` at start and on every reconnect, ``degraded: <reason>`` while the camera
  is lost, ``offline`` on a clean exit; the broker publishes the same ``offline`` as the last
  will when the daemon dies. Retained, QoS ``mqtt.qos_status``.
- ``stats``: a JSON summary every ``mqtt.stats_interval`` seconds (QoS ``mqtt.qos_stats``).

The client connects in the background and reconnects with backoff (1 s doubling up to
``mqtt.reconnect_max_delay``, 10 s).

Pose messages, by default (QoS 0, no spool): a message published while the broker is away is
dropped and counted (``dropped_offline``).

With the spool (on by default for QoS >= 1; see ``spool.py``): every pose message is appended to
the on-disk spool first, and a sender thread publishes the spool in order while connected, at
most ``SEND_WINDOW`` unacknowledged at a time, marking messages delivered as the broker
acknowledges them. An outage, or a restart of the daemon, only delays delivery; the spool's size
and age limits drop the oldest messages, counted. QoS 1 is at least once (a message in flight when
the connection breaks is sent again); QoS 2 with a broker that persists sessions (Mosquitto:
``persistence true``) is exactly once across broker restarts. After a crash of the daemon itself,
messages acknowledged in its last 50 ms may be sent twice.

Without the spool but with QoS >= 1: messages are held in memory, up to ``mqtt.queue_limit``, and
delivered after a reconnect; past the limit new ones are dropped and counted
(``dropped_queue_full``); a crash loses them.

A broker that refuses the credentials, or whose certificate fails verification (signed by
another CA, expired, issued for another host name), stops the daemon (``fatal``, exit 5) with a
clear error naming the cause, at start or on any later reconnect, instead of retrying forever; a
certificate that is not valid *yet* is retried (a board without a real-time clock may boot with
its clock behind). The password is never logged.

The client id (``clientid.py``): ``mqtt.client_id``, else one generated per installation that no
other client can guess. MQTT 3.1.1 (what the client speaks) gives no reason when the broker takes
the session over for another client with the same id: it closes the connection. So when the
broker closes the connection ``TAKEOVER_BOUNCES`` times within ``TAKEOVER_WINDOW_S`` and each
time accepts the next attempt at once, one WARNING says another client is probably using the
same id (naming where the id comes from, never the id); while that goes on, the connection lines
go to DEBUG.

If paho's network thread dies of an exception (a bug, or input paho cannot handle), the
publisher logs it with the traceback and reports it (``broken``): the daemon stops with exit 1
rather than run on delivering nothing.

Startup does not wait for the broker: ``start()`` gives it at most ``START_WAIT_S`` to answer
(``mqtt.connect_timeout`` bounds each connection attempt: TCP and TLS), then the daemon runs on
and the client keeps retrying. Each change of the connection is one log line: unreachable at
start or lost (WARNING, with the reason and what happens to pose messages meanwhile), connected
or reconnected after N s (INFO). paho's own log lines go to the DEBUG level.

Delivery accounting (``delivery()``, the exit summary, ``publish.pose`` in stats and the older
``dropped_offline`` and ``dropped_queue_full`` there) counts pose messages only. "Delivered" means,
with QoS 0, handed to a client connected to the broker (QoS 0 has no acknowledgement: a message in
the socket when the connection breaks is lost unseen); with QoS 1 or 2, acknowledged by the broker.

Transport for other sinks (the Home Assistant device uses only this): ``publish(topic, payload,
qos, retain)`` on any topic; ``subscribe(topic, callback)``, made again on every reconnect;
``on_connect(callback)``, called after every (re)connection; ``connected``. ``send_once()``
publishes a few messages with the same broker settings and disconnects (one-off commands).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttConfig, read_password
from .base import FrameResult, Sink
from .clientid import ClientId, resolve_client_id
from .delivery import Delivery
from .payload import encode
from .spool import Spool

log = logging.getLogger(__name__)
AUTH_FAILURES = ("Bad user name or password", "Not authorized", "Client identifier not valid")
START_WAIT_S = 1.0  # how long start() waits for the broker's first answer


class PublishError(RuntimeError):
    """The broker cannot be used with this configuration (refused credentials, bad TLS files)."""


SEND_WINDOW = (
    20  # Mosquitto's default max_inflight_messages; a burst beyond it loses QoS 2 messages
)


# the broker closed the connection this many times within this many seconds, accepting the next
# attempt at once each time: another client is probably taking the session over (same client id)
TAKEOVER_BOUNCES = 3
TAKEOVER_WINDOW_S = 60.0


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed (its
    ``on_connect_fail`` does not say), and reporting an exception that ends its network thread
    (``on_died(exc)``) instead of letting the thread die with only a traceback on stderr."""

    last_error: OSError | None = None
    died: Exception | None = None
    on_died: Callable[[Exception], None] | None = None

    def reconnect(self):
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise

    def loop_forever(self, *args, **kwargs):  # what loop_start()'s thread runs
        try:
            return super().loop_forever(*args, **kwargs)
        except Exception as exc:
            self.died = exc
            if self.on_died is not None:
                self.on_died(exc)
            return mqtt.MQTT_ERR_UNKNOWN


class _DebugOnly(logging.LoggerAdapter):
    """paho's own log lines, all at DEBUG: the publisher logs each connection change itself, and
    paho's ERROR lines ("Client is not connected...") only repeat what that line said. The
    client id (paho's "Sending CONNECT ... client_id=...") is left out: the generated one is
    what keeps other clients from taking the session over."""

    def log(self, level, msg, *args, **kwargs):
        secret = self.extra.get("client_id")
        if secret is not None:
            args = tuple("<client id>" if arg == secret else arg for arg in args)
        super().log(logging.DEBUG, msg, *args, **kwargs)


def _paho_logger(client: mqtt.Client, name: str, client_id: str) -> None:
    client.enable_logger(
        _DebugOnly(logging.getLogger(f"paho.{name}"), {"client_id": client_id.encode()})
    )


def _why(exc: OSError | None) -> str:
    """``connection refused``, ``timed out``, ``name or service not known``, ``TLS handshake
    failed: wrong version number``..."""
    if exc is None:
        return "no answer"
    if isinstance(exc, ssl.SSLError):
        # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)": the middle
        text = re.sub(r"^\[[^]]*\] *| *\(_ssl\.c:\d+\)$", "", exc.strerror or str(exc))
        return f"TLS handshake failed: {text or type(exc).__name__}"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) explained below
_NOT_YET_VALID, _EXPIRED, _HOSTNAME_MISMATCH = 9, 10, 62
_UNTRUSTED = (2, 18, 19, 20, 21)  # no issuer found among the trusted CAs, self-signed


def _certificate_problem(exc: BaseException | None, cfg: MqttConfig) -> tuple[str, bool] | None:
    """If ``exc`` is a failed verification of the broker's certificate: what failed, with what to
    check, and whether it is permanent (retrying cannot help); else None."""
    if not isinstance(exc, ssl.SSLCertVerificationError):
        return None
    what = (exc.verify_message or exc.reason or str(exc)).rstrip(".")
    code = exc.verify_code
    if code == _NOT_YET_VALID:  # a Pi boots with its clock behind until it has network time
        return (f"TLS certificate verification failed: {what} (is this machine's clock behind? "
                "no network time yet?)"), False  # fmt: skip
    if code == _EXPIRED:
        hint = "renew the broker's certificate, or check this machine's clock"
    elif code == _HOSTNAME_MISMATCH:
        hint = (f"the broker's certificate is issued for another name than mqtt.host "
                f"{cfg.host!r}: set mqtt.host to a name it carries")  # fmt: skip
    elif code in _UNTRUSTED:
        trusted = (f"mqtt.tls.ca_file ({cfg.tls.ca_file})" if cfg.tls.ca_file
                   else "the system's CA certificates (mqtt.tls.ca_file is empty)")  # fmt: skip
        hint = f"the broker's certificate is not signed by a CA in {trusted}"
    else:
        hint = "check the broker's certificate and mqtt.tls.ca_file"
    return f"TLS certificate verification failed: {what} ({hint})", True


def _credentials(client: mqtt.Client, cfg: MqttConfig) -> None:
    """User name, password and TLS as configured."""
    if cfg.username:
        client.username_pw_set(cfg.username, read_password(cfg))
    if cfg.tls.enabled:
        try:
            client.tls_set(
                ca_certs=cfg.tls.ca_file or None,
                certfile=cfg.tls.cert_file or None,
                keyfile=cfg.tls.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, OSError) as exc:
            raise PublishError(f"mqtt.tls: cannot load the TLS files: {exc}") from exc
        client.tls_insecure_set(cfg.tls.insecure)


class MqttPublisher(Sink):
    name = "publish"  # its counters: ``publish`` in the stats document

    def __init__(
        self,
        cfg: MqttConfig,
        device_id: str,
        spool: Spool | None = None,
        client_id: ClientId | None = None,
    ):
        """``client_id``: by default ``clientid.resolve_client_id(cfg, device_id)``."""
        self.cfg = cfg
        self.spool = spool
        self._acks: deque[int] = deque()  # mids acknowledged by the broker (network thread)
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._stop_sender = threading.Event()
        self.device_id = device_id
        base = f"{cfg.topic_prefix.strip('/')}/{device_id}"
        self.topic_pose = f"{base}/pose"
        self.topic_status = f"{base}/status"
        self.topic_stats = f"{base}/stats"
        self.status = "online"
        self.connected = threading.Event()
        self.refused: str | None = None
        self.certificate_refused: str | None = None  # the broker's certificate, for good
        self._first_answer = threading.Event()
        self._lock = threading.Lock()
        self.published = 0  # handed to the client (will be delivered unless the process dies)
        self.acked = 0  # written (QoS 0) or acknowledged (QoS 1/2)
        self.disconnects = 0
        self._stopping = False
        # pose messages only (delivery(), report(); the counters above count every topic)
        self.poses = 0  # publish_pose() calls
        self.poses_delivered = 0
        self.poses_queued = 0  # QoS >= 1 without the spool: handed to the client...
        self.poses_acked = 0  # ... and acknowledged by the broker
        self.poses_dropped = {"offline": 0, "queue_full": 0}
        self.poses_earlier = 0  # delivered from the spool an earlier run left
        self._first_seq = spool.next_seq if spool is not None else 0  # this run's first
        # without the spool: mid -> is a QoS >= 1 pose message, for the messages awaiting
        # on_publish; and the mids on_publish reported before publish() returned them
        self._inflight: dict[int, bool] = {}
        self._early: set[int] = set()
        # connection state, for one log line per change
        self._link: str | None = None  # None (no answer yet), "up", "down"
        self._down_since: float | None = None  # monotonic
        self._was_up = False
        self._connected_at_stop = False
        # a session taken over (network thread only): the broker closed the connection and the
        # next attempt succeeded at once, at these times
        self._bounce_pending = False
        self._bounces: deque[float] = deque()
        self._contested = False  # said so; the connection lines go to DEBUG meanwhile
        # the transport API: topic -> (callback, qos), and the on-connect hooks
        self._subscriptions: dict[str, tuple[Callable[[str, bytes], None], int]] = {}
        self._hooks: list[Callable[[], None]] = []

        self.client_id = client_id or resolve_client_id(cfg, device_id)
        # With the spool, keep the MQTT session across reconnects: QoS 2 handshakes in flight
        # then complete after a broker restart (if the broker persists sessions), so nothing is
        # delivered twice.
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id.value,
            clean_session=spool is None,
        )
        _paho_logger(client, device_id, self.client_id.value)
        client.connect_timeout = cfg.connect_timeout
        client.will_set(self.topic_status, "offline", qos=cfg.qos_status, retain=True)
        _credentials(client, cfg)
        client.max_queued_messages_set(max(cfg.queue_limit, SEND_WINDOW if spool else 0))
        client.max_inflight_messages_set(SEND_WINDOW)
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(cfg.reconnect_max_delay)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_died = self._on_died
        self.client = client

    # --- connection state: one log line per change ---------------------------------------------------

    @property
    def _broker(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def _meanwhile(self) -> str:
        """What happens to pose messages while the broker is away, and how often we retry."""
        if self.spool is not None:
            fate = "pose messages are kept in the spool"
        elif self.cfg.qos_pose >= 1:
            fate = (
                f"pose messages wait in memory (at most mqtt.queue_limit, {self.cfg.queue_limit})"
            )
        else:
            fate = "pose messages are dropped"
        longest = max(1, round(self.cfg.reconnect_max_delay))
        every = "every 1 s" if longest == 1 else f"every 1 to {longest} s"
        return f"{fate} until it answers, retrying {every}"

    def _went_down(self, what: str, quiet: bool = False) -> None:
        """The broker cannot be reached (network thread, or start()): log it once (``quiet``: at
        DEBUG). ``what`` starts the line: ``MQTT broker <host:port> unreachable (<why>)``..."""
        with self._lock:
            if self._link == "down":
                log.debug("%s (still)", what)
                return
            if self._link == "up":
                self.disconnects += 1
            self._link = "down"
            if self._down_since is None:
                self._down_since = time.monotonic()
        log.log(logging.DEBUG if quiet else logging.WARNING, "%s; %s", what, self._meanwhile())

    def _came_up(self, quiet: bool = False) -> None:
        with self._lock:
            since, self._down_since = self._down_since, None
            again, self._was_up = self._was_up, True
            self._link = "up"
        if since is None:
            log.info("connected to MQTT broker %s", self._broker)
        else:
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s to MQTT broker %s after %.1f s",
                "reconnected" if again else "connected", self._broker, time.monotonic() - since,
            )  # fmt: skip

    # --- paho callbacks (network thread) ------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._stopping:  # an attempt that was under way when stop() gave up on it
            return
        if reason_code.is_failure:
            refused = str(reason_code)
            if refused != self.refused:  # once per reason: paho retries
                log.error("MQTT broker %s refused the connection: %s", self._broker, refused)
            self.refused = refused
            with self._lock:
                self._link = "down"
                if self._down_since is None:
                    self._down_since = time.monotonic()
            self._first_answer.set()
            return
        self.refused = self.certificate_refused = None
        self.connected.set()
        self._first_answer.set()
        self._came_up(quiet=self._taken_over())
        self._publish(self.topic_status, self.status, self.cfg.qos_status, retain=True)
        for topic, (_, qos) in list(self._subscriptions.items()):
            client.subscribe(topic, qos)
        for hook in list(self._hooks):
            self._run(hook)

    def _taken_over(self) -> bool:
        """After a connection: count it if the broker had closed the last one and accepted this
        one at the first attempt; say once when that happens ``TAKEOVER_BOUNCES`` times within
        ``TAKEOVER_WINDOW_S``. Whether the connection lines go to DEBUG (it has been said)."""
        now = time.monotonic()
        if self._bounce_pending:
            self._bounces.append(now)
        self._bounce_pending = False
        while self._bounces and now - self._bounces[0] > TAKEOVER_WINDOW_S:
            self._bounces.popleft()
        if self._contested or len(self._bounces) < TAKEOVER_BOUNCES:
            return self._contested
        self._contested = True
        source = self.client_id.source
        if self.client_id.explicit:
            advice = ("give every client its own mqtt.client_id, or leave it empty for one that "
                      "no other client can guess")  # fmt: skip
        else:
            advice = ("was this installation copied to another board (a cloned SD card)? then "
                      "delete the kept id on one of them and restart it")  # fmt: skip
        log.warning(
            "MQTT broker %s closed the connection %d times in %.0f s, accepting the next one at "
            "once each time: another client is probably connecting with the same client id (%s) "
            "and taking the session over; %s. Further disconnections while this goes on are "
            "logged at debug level",
            self._broker, len(self._bounces), now - self._bounces[0], source, advice,
        )  # fmt: skip
        return False

    def _on_connect_fail(self, client, userdata) -> None:
        if self._stopping:
            return
        self._bounce_pending = False  # the broker was really away
        problem = _certificate_problem(client.last_error, self.cfg)
        if problem is not None and problem[1]:  # retrying cannot help: fatal, said by the daemon
            self.certificate_refused = f"MQTT broker {self._broker}: {problem[0]}"
            with self._lock:
                self._link = "down"
                if self._down_since is None:
                    self._down_since = time.monotonic()
            self._first_answer.set()
            return
        why = problem[0] if problem is not None else _why(client.last_error)
        self._went_down(f"MQTT broker {self._broker} unreachable ({why})")
        self._first_answer.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if self._stopping or self._link != "up":
            return
        if flags.is_disconnect_packet_from_server:
            why = f"the broker closed the connection: {reason_code}"
        elif str(reason_code) == "Keep alive timeout":
            why = f"no answer within mqtt.keepalive ({self.cfg.keepalive} s)"
        else:
            why = "connection lost"
        # MQTT 3.1.1: the broker closes the connection, saying nothing, when another client
        # takes the session over (as when it shuts down): whether the next attempt succeeds at
        # once tells them apart (_taken_over)
        self._bounce_pending = why == "connection lost"
        if self._contested and (
            not self._bounces or time.monotonic() - self._bounces[-1] > TAKEOVER_WINDOW_S
        ):
            self._contested = False  # quiet for a while: a new episode is said again
        self._went_down(f"disconnected from MQTT broker {self._broker} ({why})", self._contested)

    def _on_died(self, exc: Exception) -> None:
        """paho's network thread ended with an exception: nothing is sent or received any more."""
        if self._stopping:
            return
        log.error("MQTT network thread failed", exc_info=exc)
        self.connected.clear()
        self._first_answer.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1
            if self.spool is None:
                pose = self._inflight.pop(mid, None)
                if pose is None:  # publish() has not returned this mid yet
                    self._early.add(mid)
                elif pose:
                    self.poses_acked += 1
                    self.poses_delivered += 1
        if self.spool is not None:
            self._acks.append(mid)
            self._wake.set()

    # --- API (pipeline thread) ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; wait at most ``START_WAIT_S`` for the broker's answer.

        Raises PublishError if the broker refuses the credentials or its certificate fails
        verification for good (``fatal``). An unreachable broker is not an error: one warning says
        so at once, the client keeps retrying and pose messages follow the queue rules above
        meanwhile.
        """
        try:
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except ValueError as exc:
            raise PublishError(f"mqtt.host/mqtt.port: {exc}") from exc
        self.client.loop_start()
        if self.spool is not None:
            self._sender = threading.Thread(
                target=self._send_spool, name="spool-sender", daemon=True
            )
            self._sender.start()
        wait = min(START_WAIT_S, self.cfg.connect_timeout)
        answered = self._first_answer.wait(wait)
        refusal = self.fatal
        if refusal:
            self.client.loop_stop()
            raise PublishError(refusal)
        if not answered:  # a silent host (packets dropped), a slow TLS handshake: run on
            self._went_down(
                f"MQTT broker {self._broker} not answering (no reply within {wait:g} s)"
            )

    @property
    def credentials_refused(self) -> str | None:
        """Why the broker's last answer refused our credentials (at start or on any reconnect,
        e.g. after the broker's password file changed), with what to check; else None."""
        refused = self.refused
        if not refused or not any(text in refused for text in AUTH_FAILURES):
            return None
        return (
            f"MQTT broker {self.cfg.host}:{self.cfg.port} refused the connection: {refused}; "
            f"check mqtt.username and the password (mqtt.password_file or ${self.cfg.password_env})"
        )

    def _publish(
        self, topic: str, payload, qos: int, retain: bool = False, pose: bool = False
    ) -> bool:
        if qos == 0 and not self.connected.is_set():
            return self._dropped("offline", pose)
        # never under self._lock: paho calls _on_publish holding its own lock
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return self._dropped("queue_full", pose)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0
        ):
            return self._dropped("offline", pose)
        with self._lock:
            self.published += 1
            if pose and qos == 0:  # QoS 0: delivered = handed to the connected client
                self.poses_delivered += 1
            acked_pose = pose and qos > 0
            if acked_pose:
                self.poses_queued += 1
            if self.spool is None:
                if info.mid in self._early:  # acknowledged already
                    self._early.discard(info.mid)
                    self.poses_acked += acked_pose
                    self.poses_delivered += acked_pose
                else:
                    self._inflight[info.mid] = acked_pose
        return True

    def _dropped(self, reason: str, pose: bool) -> bool:
        if pose:  # the other topics' messages are not counted (a stats message dropped offline)
            with self._lock:
                self.poses_dropped[reason] += 1
        return False

    def publish_pose(self, payload: bytes, ts: float | None = None) -> None:
        with self._lock:
            self.poses += 1
        if self.spool is None:
            self._publish(self.topic_pose, payload, self.cfg.qos_pose, pose=True)
            return
        self.spool.append(payload, ts)
        self._wake.set()

    def _send_spool(self) -> None:
        """Sender thread: ``_send_spool_loop``, started again from the spool's acknowledged
        point if it ever fails (a disk error while reading, say): delivery must not stop."""
        while True:
            try:
                self._send_spool_loop()
                return
            except Exception:
                log.exception("spool sender failed; starting it again in 1 s")
                if self._stop_sender.wait(1.0):
                    return

    def _send_spool_loop(self) -> None:
        """Publish the spool in order while connected; record acknowledgements."""
        spool = self.spool
        next_seq = spool.first_pending()
        sent: dict[int, int] = {}  # mid -> seq, for messages awaiting the broker's ack
        done: set[int] = set()  # acknowledged seqs above the contiguous ack point
        acked_to = next_seq - 1
        while True:
            while self._acks:
                seq = sent.pop(self._acks.popleft(), None)
                if seq is not None and seq > acked_to and seq not in done:
                    done.add(seq)
                    with self._lock:
                        if seq >= self._first_seq:
                            self.poses_delivered += 1
                        else:
                            self.poses_earlier += 1
            advanced = acked_to
            while advanced + 1 in done:
                advanced += 1
                done.discard(advanced)
            if advanced != acked_to:
                acked_to = advanced
                spool.ack_through(acked_to)
            if self._stop_sender.is_set() and not sent:
                return
            # messages dropped by the spool's limits are skipped
            first = spool.first_pending()
            if first > next_seq:
                next_seq = first
                acked_to = max(acked_to, first - 1)
                done = {d for d in done if d > acked_to}
            room = SEND_WINDOW - len(sent)
            records = []
            if self.connected.is_set() and room > 0 and not self._stop_sender.is_set():
                records = spool.read_from(next_seq, room)
            for record in records:
                if record.seq > next_seq:  # numbers lost between segments: nothing to wait for
                    done.update(range(max(next_seq, acked_to + 1), record.seq))
                info = self.client.publish(self.topic_pose, record.payload, qos=self.cfg.qos_pose)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    break  # try again shortly
                with self._lock:
                    self.published += 1
                sent[info.mid] = record.seq
                next_seq = record.seq + 1
            if not records:
                self._wake.wait(0.1)
                self._wake.clear()

    def publish_stats(self, payload: bytes) -> None:
        self._publish(self.topic_stats, payload, self.cfg.qos_stats)

    # --- transport for other sinks --------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Connected to the broker now."""
        return self.connected.is_set()

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Publish one message on ``topic`` (any thread). False if it was dropped: QoS 0 while
        the broker is away, or the client's queue is full (QoS 1 and 2 wait in memory for the
        connection); not counted, the report counts pose messages. Never raises for a passing
        fault."""
        return self._publish(topic, payload, qos, retain=retain)

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None], qos: int = 1) -> None:
        """Hand the messages on ``topic`` (one topic, or a filter) to ``callback(topic,
        payload)``, called on the network thread: it must return quickly; an exception in it is
        logged. Messages the broker delivers because they were retained are not handed over
        (after a connection the caller's ``on_connect`` hook runs anyway). The subscription is
        made again on every reconnect; only the topics subscribed here reach any callback."""
        self._subscriptions[topic] = (callback, qos)

        def deliver(client, userdata, message) -> None:
            if not message.retain:
                self._run(callback, message.topic, message.payload)

        self.client.message_callback_add(topic, deliver)
        if self.connected.is_set():
            self.client.subscribe(topic, qos)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every connection and reconnection to the broker (on the
        network thread, after the status is published); register it before ``start()``. An
        exception in it is logged."""
        self._hooks.append(callback)

    def _run(self, callback: Callable, *args) -> None:
        """A callback of another sink, on the network thread: a fault is logged, never allowed
        to stop paho's loop."""
        try:
            callback(*args)
        except Exception:
            log.exception("MQTT callback %s failed", getattr(callback, "__qualname__", callback))

    # --- the Sink interface -------------------------------------------------------------------

    def frame(self, result: FrameResult) -> None:
        self.publish_pose(encode(result, self.cfg.encoding, self.device_id), result.ts)

    def stats(self, stats: dict) -> None:
        self.publish_stats(json.dumps(stats, separators=(",", ":")).encode())

    @property
    def fatal(self) -> str | None:
        """Refused credentials, or a broker certificate that fails verification for good."""
        if self.certificate_refused:
            return f"{self.certificate_refused}; retrying cannot help"
        return self.credentials_refused

    @property
    def broken(self) -> str | None:
        """paho's network thread died: nothing can be delivered any more."""
        exc = self.client.died
        if exc is None or self._stopping:
            return None
        kind = type(exc).__qualname__
        if type(exc).__module__ != "builtins":  # struct.error, not "error"
            kind = f"{type(exc).__module__}.{kind}"
        text = str(exc)
        text = text if len(text) <= 200 else text[:200] + "..."
        return f"MQTT network thread failed ({kind}: {text}): nothing can be sent"

    def set_status(self, status: str) -> None:
        """Publish a retained status (``online``, ``degraded: ...``); re-sent on reconnect."""
        if status != self.status:
            log.info("status %s", status)
        self.status = status
        self._publish(self.topic_status, status, self.cfg.qos_status, retain=True)

    @property
    def pending(self) -> int:
        if self.spool is not None:
            return self.spool.pending
        with self._lock:
            return max(0, self.published - self.acked)

    def stop(self, timeout: float = 3.0) -> None:
        """Deliver what is queued (up to ``timeout``), publish ``offline``, disconnect. Spooled
        messages not delivered by then stay on disk for the next start."""
        deadline = time.monotonic() + timeout
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._sender is not None:
            self._stop_sender.set()
            self._wake.set()
            self._sender.join(max(0.1, deadline - time.monotonic()))
        self.status = "offline"
        if self.connected.is_set():
            info = self.client.publish(
                self.topic_status, "offline", qos=self.cfg.qos_status, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self._connected_at_stop = self.connected.is_set()
        self._stopping = True
        self.client.disconnect()
        # loop_stop() joins paho's thread, which may be inside a connection attempt to a host that
        # does not answer (up to mqtt.connect_timeout): that must not hold up the exit
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        left = deadline - time.monotonic()
        stopper.join(max(1.0, left) if self._connected_at_stop else min(1.0, max(0.1, left)))
        if self.spool is not None:
            self.spool.close()

    def delivery(self, final: bool = False) -> Delivery:
        """This run's pose messages so far (``final``: after ``stop()``, when the ones still
        awaiting an acknowledgement without the spool are lost)."""
        with self._lock:
            report = Delivery(
                produced=self.poses,
                delivered=self.poses_delivered,
                dropped={**self.poses_dropped, "unacknowledged": 0},
                earlier=self.poses_earlier,
                spool=self.spool is not None,
            )
            unacked = self.poses_queued - self.poses_acked
        if self.spool is None:
            if final:  # still held in memory: lost now
                reason = "unacknowledged" if self._connected_at_stop else "offline"
                report.dropped[reason] += max(0, unacked)
            else:
                report.pending = max(0, unacked)
        else:
            spool = self.spool.stats()
            report.dropped.update(spool_full=spool["dropped_full"], spool_age=spool["dropped_age"],
                                  spool_io=spool["dropped_io"])  # fmt: skip
            report.pending = spool["pending"]
        return report

    def report(self) -> dict:
        return {
            "connected": self.connected.is_set(),
            "sent": self.acked,
            "pending": self.pending,
            "dropped_offline": self.poses_dropped["offline"],  # pose messages, as "pose"
            "dropped_queue_full": self.poses_dropped["queue_full"],
            "disconnects": self.disconnects,
            "spool": self.spool.stats() if self.spool is not None else None,
            "pose": self.delivery().to_dict(),
        }


def send_once(
    cfg: MqttConfig,
    messages: list[tuple[str, bytes, bool]],
    client_id: str,
    timeout: float = 10.0,
) -> None:
    """Connect with ``cfg``'s broker settings (credentials, TLS), publish ``messages`` (topic,
    payload, retain) with QoS 1, wait until the broker has acknowledged them all, disconnect. For
    one-off commands (``blazepose-edge ha remove``): no status, no last will. Raises
    PublishError if the broker cannot be reached, refuses the connection or does not acknowledge
    within ``timeout`` seconds."""
    broker = f"{cfg.host}:{cfg.port}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    _paho_logger(client, "send_once", client_id)
    client.connect_timeout = min(cfg.connect_timeout, timeout)
    _credentials(client, cfg)
    answered = threading.Event()
    refused: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive)
    except (OSError, ValueError) as exc:
        problem = _certificate_problem(exc, cfg)
        if problem is not None:
            raise PublishError(f"MQTT broker {broker}: {problem[0]}") from None
        why = _why(exc) if isinstance(exc, OSError) else str(exc)
        raise PublishError(f"MQTT broker {broker} unreachable ({why})") from None
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        if not answered.wait(timeout):
            raise PublishError(
                f"MQTT broker {broker} not answering (no reply within {timeout:g} s)"
            )
        if refused:
            raise PublishError(f"MQTT broker {broker} refused the connection: {refused[0]}")
        infos = [client.publish(topic, payload, qos=1, retain=retain)
                 for topic, payload, retain in messages]  # fmt: skip
        for info in infos:
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise PublishError(f"MQTT broker {broker} did not acknowledge within {timeout:g} s")
        client.disconnect()
    finally:
        client.loop_stop()
