"""The live view (HTTP sink): its server in-process, then a daemon playing the demo clip with it
on, read by an HTTP client, promtool and a real headless Chromium."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.service.config import Config, ConfigError, is_loopback, load
from edge.service.sinks import FrameResult, make_sinks
from edge.service.sinks.live import LiveView

from .broker import free_port

PASSWORD = "open-sesame-7391"


def get(port: int, path: str, auth: tuple[str, str] | None = None, timeout: float = 10,
        **headers: str):  # fmt: skip
    """(status, headers, body) of a GET on 127.0.0.1:``port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def read_parts(port: int, path: str, n: int, timeout: float = 20) -> tuple[dict, list[bytes]]:
    """The headers and the first ``n`` JPEGs of an MJPEG stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    headers = dict(resp.getheaders())
    boundary = headers["Content-Type"].split("boundary=")[1].encode()
    parts = []
    while len(parts) < n:
        line = resp.fp.readline()
        if not line:
            break
        if line.strip() != b"--" + boundary:
            continue
        fields = {}
        while (line := resp.fp.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            fields[name.lower()] = value.strip()
        assert fields["content-type"] == "image/jpeg"
        parts.append(resp.fp.read(int(fields["content-length"])))
    conn.close()
    return headers, parts


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def skeleton_pixels(bgr: np.ndarray) -> tuple[int, int]:
    """Pixels of the drawn joints' two colours (left orange, right blue; draw_poses)."""
    b, g, r = (bgr[..., i].astype(int) for i in range(3))
    orange = (r > 200) & (g > 90) & (g < 185) & (b < 80)
    blue = (b > 200) & (g > 80) & (g < 175) & (r < 70)
    return int(orange.sum()), int(blue.sum())


# --- the sink in-process -------------------------------------------------------------------------


def http_config(**http) -> Config:
    cfg = Config()
    cfg.mqtt.host = "none"
    cfg.http.enabled = True
    cfg.http.port = 0  # a free port (not a valid config value: tests only)
    for key, value in http.items():
        setattr(cfg.http, key, value)
    return cfg


@pytest.fixture
def view_factory():
    made = []

    def make(**http) -> LiveView:
        view = LiveView(http_config(**http))
        view.start()
        made.append(view)
        return view

    yield make
    for view in made:
        view.stop()


def feed(view: LiveView, stop: threading.Event, fps: float = 100) -> threading.Thread:
    """A pipeline stand-in: frames with a fresh image each (the daemon reuses its buffers)."""

    def run():
        image = np.zeros((120, 160, 3), np.uint8)
        i = 0
        while not stop.is_set():
            image[:] = i % 256
            view.frame(FrameResult(i, time.time(), 160, 120, [], image, {"total": 5.0}))
            i += 1
            time.sleep(1 / fps)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_http_is_off_by_default_and_on_localhost():
    cfg = load(None, {"source.uri": "demo"})
    assert cfg.http.enabled is False and (cfg.http.host, cfg.http.port) == ("127.0.0.1", 8080)
    assert not any(type(s).__name__ == "LiveView" for s in make_sinks(cfg))  # nothing listens
    from edge.service.cli import _load_config, build_parser

    args = build_parser().parse_args(["run", "--source", "demo", "--http-port", "8123"])
    cfg = _load_config(args)
    assert cfg.http.enabled and cfg.http.port == 8123 and cfg.http.host == "127.0.0.1"


def test_listening_beyond_localhost_needs_a_password_or_anonymous(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("pi.lan")
    path = tmp_path / "c.toml"
    path.write_text('[http]\nenabled = true\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"http.host beyond 127.0.0.1 needs http.username"):
        load(path)
    path.write_text('[http]\nenabled = true\nhost = "0.0.0.0"\nanonymous = true\n')
    assert load(path).http.anonymous
    path.write_text('[http]\nenabled = true\nhost = "0.0.0.0"\nusername = "viewer"\n')
    assert load(path).http.username == "viewer"
    path.write_text('[http]\nhost = "0.0.0.0"\n')  # not enabled: nothing listens
    load(path)
    path.write_text('[http]\nusername = "a:b"\n')
    with pytest.raises(ConfigError, match="http.username must not contain a colon"):
        load(path)


def test_a_username_without_a_password_is_refused(monkeypatch):
    monkeypatch.delenv("BLAZEPOSE_EDGE_HTTP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="http.username is set but no password"):
        LiveView(http_config(username="viewer"))


def test_a_taken_port_is_a_config_error_naming_the_key():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = http_config()
        cfg.http.port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"http.port: cannot listen on 127.0.0.1:\d+"):
            LiveView(cfg)


def test_frames_are_copied_only_while_someone_watches(view_factory):
    view = view_factory()
    stop = threading.Event()
    thread = feed(view, stop)
    try:
        time.sleep(0.5)
        assert view.frames > 10
        assert view.copies == 0 and view.kept is None and view.encoded == 0  # nobody watches
        status, headers, body = get(view.port, "/snapshot.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert decode(body).shape == (120, 160, 3)
        assert view.copies == 1 and view.encoded == 1
        # a 5 FPS viewer: about 5 copies a second of a 100 FPS pipeline
        copies = view.copies
        headers, parts = read_parts(view.port, "/stream.mjpg?fps=5&h=60", 6)
        assert headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        assert [decode(p).shape for p in parts] == [(60, 80, 3)] * 6
        assert 6 <= view.copies - copies <= 8
        assert len({p for p in parts}) == 6  # a new frame each time
        time.sleep(0.3)
        copies = view.copies
        time.sleep(0.5)
        assert view.copies == copies  # the viewer left: no more copies
    finally:
        stop.set()
        thread.join()


def test_stream_parameters_are_checked(view_factory):
    view = view_factory()
    for query in ("fps=0", "fps=abc", "fps=nan", "fps=100", "h=2", "height=-5"):
        status, _, body = get(view.port, f"/stream.mjpg?{query}")
        assert status == 400, (query, body)
    assert get(view.port, "/nothing")[0] == 404
    assert view.streams == 0


def test_streams_are_bounded_and_end_on_stop(view_factory):
    view = view_factory(max_streams=1)
    stop = threading.Event()
    thread = feed(view, stop)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
        conn.request("GET", "/stream.mjpg?fps=2")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.fp.readline()
        status, headers, body = get(view.port, "/stream.mjpg")
        assert status == 503 and b"http.max_streams" in body and headers["Retry-After"]
        t0 = time.monotonic()
        view.stop()
        while resp.fp.read(65536):  # the server ends the stream
            pass
        assert time.monotonic() - t0 < 4
        assert view.streams == 0
        with pytest.raises(OSError):
            get(view.port, "/healthz", timeout=2)
        conn.close()
    finally:
        stop.set()
        thread.join()


def test_health_follows_status_and_frames(view_factory, monkeypatch):
    view = view_factory()
    status, _, body = get(view.port, "/healthz")
    assert status == 503 and json.loads(body)["reason"] == "no frame yet"
    image = np.zeros((8, 8, 3), np.uint8)
    view.frame(FrameResult(0, time.time(), 8, 8, [], image, {}))
    status, _, body = get(view.port, "/healthz")
    assert status == 200 and json.loads(body) == {
        "healthy": True, "status": "online", "last_frame_age_s": json.loads(body)["last_frame_age_s"]
    }  # fmt: skip
    view.set_status("degraded: camera lost: timed out")
    status, _, body = get(view.port, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "degraded"
    assert b"timed out" not in body  # the reason is for authorised eyes (/api/status)
    assert get(view.port, "/api/status")[2] == b"degraded: camera lost: timed out\n"
    view.set_status("online")
    import edge.service.sinks.live as live

    monkeypatch.setattr(live, "STALE_S", 0.0)
    status, _, body = get(view.port, "/healthz")
    assert status == 503 and json.loads(body)["reason"].startswith("no frame for")
    assert get(view.port, "/api/stats")[0] == 503  # before the daemon's first stats
    view.stats({"v": 1, "frames": 1})
    assert json.loads(get(view.port, "/api/stats")[2]) == {"v": 1, "frames": 1}


def test_basic_auth(view_factory, monkeypatch, caplog):
    monkeypatch.setenv("BLAZEPOSE_EDGE_HTTP_PASSWORD", PASSWORD)
    caplog.set_level("DEBUG")
    view = view_factory(username="viewer")
    for path in ("/", "/api/stats", "/api/status", "/metrics", "/snapshot.jpg", "/stream.mjpg"):
        status, headers, body = get(view.port, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == 'Basic realm="blazepose-edge", charset="UTF-8"'
        assert get(view.port, path, ("viewer", "wrong"))[0] == 401
        assert get(view.port, path, ("other", PASSWORD))[0] == 401
    assert get(view.port, "/healthz")[0] == 503  # no password needed (nothing flows yet)
    status, _, body = get(view.port, "/", ("viewer", PASSWORD))
    assert status == 200 and b"<img" in body
    assert get(view.port, "/metrics", ("viewer", PASSWORD))[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=5)
    conn.request("GET", "/api/status", headers={"Authorization": "Basic !!not base64!!"})
    assert conn.getresponse().status == 401
    conn.close()
    assert view.refused >= 18
    assert "refused 127.0.0.1: wrong user name or password" in caplog.text
    assert PASSWORD not in caplog.text
    assert base64.b64encode(f"viewer:{PASSWORD}".encode()).decode() not in caplog.text


def test_password_from_a_file_and_a_systemd_credential(tmp_path, monkeypatch):
    monkeypatch.delenv("BLAZEPOSE_EDGE_HTTP_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    view = LiveView(http_config(username="viewer", password_file=str(pw)))
    try:
        view.start()
        assert get(view.port, "/api/status", ("viewer", PASSWORD))[0] == 200
    finally:
        view.stop()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "http_password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    view = LiveView(http_config(username="viewer"))
    try:
        view.start()
        assert get(view.port, "/api/status", ("viewer", "from-systemd"))[0] == 200
    finally:
        view.stop()


def test_page_loads_nothing_from_elsewhere(view_factory):
    view = view_factory()
    status, headers, body = get(view.port, "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for ref in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not re.match(r"^[a-z]+:|^//", ref), ref  # relative: this server only
    assert 'src="stream.mjpg' in page
    assert not re.search(r"https?://", page)


# --- a daemon playing the demo clip --------------------------------------------------------------


class Daemon:
    def __init__(self, tmp: Path, *args: str, config: str = "", env: dict | None = None):
        self.port = free_port()
        self.log = tmp / "daemon.log"
        cfg = tmp / "c.toml"
        cfg.write_text("[mqtt]\nstats_interval = 0.5\n" + config)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.service.cli", "--log-level", "debug", "run",
             "--config", str(cfg), "--source", "demo", "--realtime", "--mqtt-host", "none",
             "--device-id", "live1", "--http-port", str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if get(self.port, "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("never healthy:\n" + self.log.read_text())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, models_ready):
    d = Daemon(tmp_path_factory.mktemp("live"))
    try:
        d.wait_healthy()
        yield d
    finally:
        d.stop()


def wait_stats(port: int, ok, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = get(port, "/api/stats")
        if status == 200 and ok(stats := json.loads(body)):
            return stats
        time.sleep(0.2)
    raise AssertionError("no such stats")


def test_daemon_serves_page_stats_snapshot_and_stream(daemon):
    port = daemon.port
    status, _, page = get(port, "/")
    assert status == 200 and b"blazepose-edge" in page
    assert get(port, "/api/status")[2] == b"online\n"
    stats = wait_stats(port, lambda s: s["frames"] >= 10)
    assert stats["device"] == "live1" and stats["model"] == "full" and stats["runtime"]
    assert stats["http"]["requests"] >= 1  # the live view's own report, as on the stats topic
    status, headers, jpeg = get(port, "/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    drawn = decode(jpeg)
    assert drawn.shape == (576, 576, 3)  # the demo clip's frames
    bare = decode(get(port, "/snapshot.jpg?skeleton=0")[2])
    orange, blue = skeleton_pixels(drawn)
    assert orange > 40 and blue > 40, (orange, blue)  # joints drawn on both sides
    assert sum(skeleton_pixels(bare)) < 10  # the clip itself has none of those colours
    assert decode(get(port, "/snapshot.jpg?h=288")[2]).shape == (288, 288, 3)
    t0 = time.monotonic()
    headers, parts = read_parts(port, "/stream.mjpg?fps=5&h=240", 6)
    elapsed = time.monotonic() - t0
    assert [decode(p).shape for p in parts] == [(240, 240, 3)] * 6
    assert 0.7 < elapsed < 4  # 5 frames a second
    assert headers["Cache-Control"] == "no-store"


def test_metrics_pass_promtool(daemon, tmp_path):
    wait_stats(daemon.port, lambda s: s["frames"] >= 10)
    status, headers, body = get(daemon.port, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in (
        "blazepose_edge_info{", "blazepose_edge_frames_processed_total ",
        "blazepose_edge_frames_dropped_total ", "blazepose_edge_frames_bad_total ",
        'blazepose_edge_stage_latency_seconds_bucket{le="0.05",stage="total"}',
        'blazepose_edge_stage_latency_seconds_count{stage="estimator_invoke"}',
        "blazepose_edge_frames_per_second ", "blazepose_edge_detector_share_ratio ",
        "blazepose_edge_int8_fallback_ratio 0.0",
        "blazepose_edge_publish_queue_messages ", "blazepose_edge_healthy 1.0",
        "process_cpu_seconds_total ",
    ):  # fmt: skip
        assert name in text, name
    info = re.search(r"^blazepose_edge_info\{(.*)\} 1\.0$", text, re.M).group(1)
    for label in ('model="full"', 'variant="float"', 'runtime="', 'board="', 'version="'):
        assert label in info
    frames = float(re.search(r"^blazepose_edge_frames_processed_total (\S+)$", text, re.M)[1])
    count = float(re.search(r'_count\{stage="total"\} (\S+)$', text, re.M)[1])
    assert 0 < count <= frames <= count + 2  # every processed frame, but the newest
    status, headers, om = get(daemon.port, "/metrics", Accept="application/openmetrics-text")
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.endswith(b"# EOF\n") and b"blazepose_edge_frames_processed_total" in om
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (Debian package prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert not check.stdout.strip() and not check.stderr.strip()  # no lint complaint either


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium missing: .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (Debian package chromium)")
    return path


def test_chromium_shows_the_skeleton(daemon, tmp_path):
    shot = tmp_path / "page.png"  # never committed: the test's own temporary folder
    for _ in range(3):
        run = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1000,800", "--hide-scrollbars", f"--screenshot={shot}",
             f"http://127.0.0.1:{daemon.port}/"],
            capture_output=True, timeout=90,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        page = cv2.imread(str(shot))
        orange, blue = skeleton_pixels(page)
        if orange > 40 and blue > 40:
            break
        time.sleep(1)  # the first frame may not have arrived when the page loaded
    assert orange > 40 and blue > 40, (orange, blue)
    # and the page's script filled in the status and the stats
    dom = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile2'}",
         "--virtual-time-budget=3000", "--dump-dom", f"http://127.0.0.1:{daemon.port}/"],
        capture_output=True, timeout=90,
    ).stdout.decode()  # fmt: skip
    assert '<span id="status" class="online">online</span>' in dom
    assert re.search(r'<td id="model">full, float, \w+</td>', dom), dom[-1500:]


def test_daemon_with_basic_auth_never_logs_the_password(tmp_path, models_ready):
    d = Daemon(tmp_path, config='[http]\nusername = "viewer"\n',
               env={"BLAZEPOSE_EDGE_HTTP_PASSWORD": PASSWORD})  # fmt: skip
    try:
        d.wait_healthy()  # /healthz needs no password
        assert get(d.port, "/")[0] == 401
        assert get(d.port, "/metrics", ("viewer", "nope"))[0] == 401
        assert get(d.port, "/metrics", ("viewer", PASSWORD))[0] == 200
        status, _, jpeg = get(d.port, "/snapshot.jpg", ("viewer", PASSWORD))
        assert status == 200 and decode(jpeg).shape == (576, 576, 3)
        stats = json.loads(get(d.port, "/api/stats", ("viewer", PASSWORD))[2])
        assert PASSWORD not in json.dumps(stats)
    finally:
        assert d.stop() == 0
    log = d.log.read_text()
    assert "live view on http://127.0.0.1:" in log and "refused 127.0.0.1" in log
    assert PASSWORD not in log
    assert base64.b64encode(f"viewer:{PASSWORD}".encode()).decode() not in log
