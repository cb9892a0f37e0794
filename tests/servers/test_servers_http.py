"""HTTP/HTTPS firmware server: Range, chunked, redirects, HEAD, ETag, /health, TLS, bad requests, logs."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.request

import pytest
from ota_clients import WAIT, fetch_http, make_image

from harness.servers import WRONG_HOST, FaultPlan, HttpServer, TlsMaterial, parse_range
from harness.servers.http import ByteRange, MalformedRange, RangeNotSatisfiable, UnusableRange

IMAGE = make_image(20_000, seed=2)


def request(server: HttpServer, method: str, path: str, headers: dict[str, str] | None = None,
            context: ssl.SSLContext | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    if server.scheme == "https":
        conn = http.client.HTTPSConnection(server.endpoint.host, server.endpoint.port, timeout=WAIT, context=context)
    else:
        conn = http.client.HTTPConnection(server.endpoint.host, server.endpoint.port, timeout=WAIT)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def raw_exchange(server: HttpServer, data: bytes) -> bytes:
    """Send raw bytes, return everything the server answers before it closes (or resets)."""
    with socket.create_connection((server.endpoint.host, server.endpoint.port), timeout=WAIT) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.fixture
def server(http_server) -> HttpServer:
    srv = http_server()
    srv.add("/fw.bin", IMAGE)
    return srv


# -- plain HTTP -------------------------------------------------------------------


def test_get_head_404_and_one_log_record_per_request(server):
    resp, body = request(server, "GET", "/fw.bin")
    assert (resp.status, body) == (200, IMAGE)
    assert resp.headers["Content-Length"] == str(len(IMAGE))
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    resp, body = request(server, "HEAD", "/fw.bin")
    assert (resp.status, body, resp.headers["Content-Length"]) == (200, b"", str(len(IMAGE)))
    resp, _ = request(server, "GET", "/missing.bin")
    assert resp.status == 404
    # one record per request, each written by its connection's thread (so in any order)
    records = sorted(server.wait_requests(3), key=lambda r: (r["path"], r["method"]))
    assert [(r["method"], r["path"], r["status"], r["bytes_sent"]) for r in records] == [
        ("GET", "/fw.bin", 200, len(IMAGE)), ("HEAD", "/fw.bin", 200, 0), ("GET", "/missing.bin", 404, 0)]
    assert records[0]["peer"].startswith("127.0.0.1:") and records[0]["request"] == "GET /fw.bin HTTP/1.1"


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection(server.endpoint.host, server.endpoint.port, timeout=WAIT)
    try:
        for _ in range(3):
            conn.request("GET", "/fw.bin")
            assert conn.getresponse().read() == IMAGE
    finally:
        conn.close()
    assert len({r["peer"] for r in server.wait_requests(3)}) == 1


@pytest.mark.parametrize("header, first, last", [
    ("bytes=100-199", 100, 199),
    ("bytes=19000-", 19000, 19999),
    ("bytes=-50", 19950, 19999),
    ("bytes=100-999999", 100, 19999),
])
def test_range_gets_206_with_exactly_those_bytes(server, header, first, last):
    resp, body = request(server, "GET", "/fw.bin", {"Range": header})
    assert resp.status == 206
    assert body == IMAGE[first:last + 1]
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(IMAGE)}"


def test_range_beyond_the_end_gets_416(server):
    resp, body = request(server, "GET", "/fw.bin", {"Range": "bytes=20000-"})
    assert (resp.status, body) == (416, b"")
    assert resp.headers["Content-Range"] == f"bytes */{len(IMAGE)}"
    assert server.wait_requests(1)[-1]["outcome"] == "unsatisfiable"


@pytest.mark.parametrize("header, why", [
    ("bytes=abc-", "malformed range 'abc-'"),
    ("bytes=\u00b2-", "malformed range '\u00b2-'"),  # a superscript two is a digit to str.isdigit(), not to HTTP
    ("bytes=1" + "\u0662".encode().decode("latin-1") + "-", "malformed range"),  # an Arabic-Indic two in UTF-8
    ("bytes=5-3", "range ends before it starts: '5-3'"),
    ("bytes=-", "malformed range '-': no position"),
    ("bytes=", "no range in 'bytes='"),
    ("bytes=,", "no range in 'bytes=,'"),
    ("bytes", "'bytes' is not unit=ranges"),
    ("bytes 0-1", "'bytes 0-1' is not unit=ranges"),
    ("by tes=0-1", "range unit 'by tes' is not a token"),
    ("bytes=0 - 1", "malformed range '0 - 1'"),
    ("bytes=0-1,x-", "malformed range 'x-'"),  # each range of a list is checked, even one that is ignored
    ("bytes=0x10-", "malformed range '0x10-'"),
    ("bytes=+5-", "malformed range '+5-'"),
    ("", "'' is not unit=ranges"),
    ("bytes=" + "9" * 21 + "-", "has a position of 21 digits (at most 20)"),
    ("bytes=0-" + "9" * 5000, "has a position of 5000 digits (at most 20)"),
    ("bytes=" + "0" * 5000 + "2-", "has a position of 5001 digits (at most 20)"),
])
def test_a_malformed_range_gets_400_and_is_logged(server, header, why):
    resp, body = request(server, "GET", "/fw.bin", {"Range": header})
    assert resp.status == 400, body[:100]
    assert body.startswith(b"bad Range header: ") and why.encode() in body
    record = server.wait_requests(1)[-1]
    assert (record["status"], record["outcome"], record["bytes_sent"]) == (400, "malformed", 0)
    assert why in record["range_error"]
    resp, body = request(server, "GET", "/fw.bin")  # and the server carries on
    assert (resp.status, body) == (200, IMAGE)


@pytest.mark.parametrize("header", ["bytes=20000-", "bytes=20000-20001", "bytes=" + "9" * 20 + "-", "bytes=-0"])
def test_an_unsatisfiable_range_gets_416(server, header):
    resp, body = request(server, "GET", "/fw.bin", {"Range": header})
    assert (resp.status, body) == (416, b"")
    assert resp.headers["Content-Range"] == f"bytes */{len(IMAGE)}"


@pytest.mark.parametrize("header, why", [
    ("items=0-1", "unit 'items' is not 'bytes'"),  # RFC 9110: a server MUST ignore a unit it does not know
    ("bytes=0-1,5-6", "multiple ranges are not supported"),  # and MAY ignore a multi-range request
    ("bytes=0-1, 30000-", "multiple ranges are not supported"),
])
def test_another_unit_or_several_ranges_get_the_whole_body_and_are_logged(server, header, why):
    resp, body = request(server, "GET", "/fw.bin", {"Range": header})
    assert (resp.status, body) == (200, IMAGE)
    assert "Content-Range" not in resp.headers
    assert why in server.wait_requests(1)[-1]["range_ignored"]


def test_empty_list_elements_are_skipped(server):
    resp, body = request(server, "GET", "/fw.bin", {"Range": "bytes= ,100-199,"})
    assert (resp.status, body) == (206, IMAGE[100:200])


def test_parse_range():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-", 10) == ByteRange(2, 9, 10)
    assert parse_range("BYTES=2-4", 10) == ByteRange(2, 4, 10)  # the unit is case-insensitive
    assert parse_range("bytes=-3", 10).content_range == "bytes 7-9/10"
    assert parse_range("bytes=-30", 10) == ByteRange(0, 9, 10)
    assert parse_range("bytes=0-0", 10) == ByteRange(0, 0, 10)
    for unsatisfiable in ("bytes=10-", "bytes=-0", "bytes=-1"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(unsatisfiable, 10 if unsatisfiable != "bytes=-1" else 0)
    for malformed in ("bytes=-", "bytes=3-2", "bytes=a", "=0-1", "bytes=1-2-3"):
        with pytest.raises(MalformedRange):
            parse_range(malformed, 10)
    with pytest.raises(UnusableRange):
        parse_range("bytes=0-1,3-4", 10)
    # the longest position a client can mean, 2**64 - 1, and leading zeros within 20 digits
    assert parse_range(f"bytes=0-{2**64 - 1}", 10) == ByteRange(0, 9, 10)
    assert parse_range(f"bytes=-{2**64 - 1}", 10) == ByteRange(0, 9, 10)
    assert parse_range("bytes=" + "0" * 19 + "2-", 10) == ByteRange(2, 9, 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range(f"bytes={2**64 - 1}-", 10)


def test_the_agents_resume_range_is_served(server):
    """The agent (device_fw/micropython/lib/otahttp.py) resumes with ``bytes=N-`` for 0 < N < size."""
    for done in (1, 12345, len(IMAGE) - 1):
        resp, body = request(server, "GET", "/fw.bin", {"Range": "bytes=%d-" % done})
        assert (resp.status, body) == (206, IMAGE[done:])


def test_server_that_ignores_range(http_server):
    srv = http_server(ignore_range=True)
    srv.add("/fw.bin", IMAGE)
    resp, body = request(srv, "GET", "/fw.bin", {"Range": "bytes=100-"})
    assert (resp.status, body) == (200, IMAGE)
    assert resp.headers["Accept-Ranges"] == "none"
    assert srv.wait_requests(1)[-1]["range_ignored"] == "server ignores Range"


def test_chunked_transfer_encoding(http_server):
    srv = http_server(chunked=True, chunk_size=4096)
    srv.add("/fw.bin", IMAGE)
    resp, body = request(srv, "GET", "/fw.bin")
    assert body == IMAGE
    assert resp.headers["Transfer-Encoding"] == "chunked" and resp.headers["Content-Length"] is None


def test_one_path_chunked_on_a_server_that_is_not_and_the_reverse(http_server):
    srv = http_server(chunked=False)
    srv.add("/chunked.bin", IMAGE, chunked=True)
    srv.add("/plain.bin", IMAGE)
    resp, body = request(srv, "GET", "/chunked.bin")
    assert body == IMAGE and resp.headers["Transfer-Encoding"] == "chunked" and resp.headers["Content-Length"] is None
    resp, body = request(srv, "GET", "/plain.bin")
    assert body == IMAGE and resp.headers["Content-Length"] == str(len(IMAGE))
    chunked_srv = http_server(chunked=True)
    chunked_srv.add("/sized.bin", IMAGE, chunked=False)
    resp, body = request(chunked_srv, "GET", "/sized.bin")
    assert body == IMAGE and resp.headers["Transfer-Encoding"] is None


def test_chunked_truncation_is_an_incomplete_body(http_server):
    srv = http_server(chunked=True, fault=FaultPlan(truncate_at=5000))
    srv.add("/fw.bin", IMAGE)
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        request(srv, "GET", "/fw.bin")
    assert excinfo.value.partial == IMAGE[:5000]


def test_redirect_chain_is_followed_to_the_image(server, http_server):
    other = http_server(name="cdn")
    other.add("/images/fw.bin", IMAGE)
    server.add_redirect("/latest", "/v2", status=302)
    server.add_redirect("/v2", "/v2/", status=301)
    server.add_redirect("/v2/", other.url_for("/images/fw.bin"), status=307)
    with urllib.request.urlopen(server.url_for("/latest"), timeout=WAIT) as resp:
        assert resp.read() == IMAGE
        assert resp.url == other.url_for("/images/fw.bin")
    # Each hop is logged by its own connection thread after it answered: the log order can differ.
    records = {r["path"]: r for r in server.wait_requests(3)}
    assert {p: r["status"] for p, r in records.items()} == {"/latest": 302, "/v2": 301, "/v2/": 307}
    assert records["/latest"]["location"] == server.url_for("/v2")
    with pytest.raises(ValueError, match="not a redirect"):
        server.add_redirect("/x", "/y", status=200)


def test_etag_if_none_match_and_if_range(http_server):
    srv = http_server(etag=True)
    srv.add("/fw.bin", IMAGE)
    resp, _ = request(srv, "GET", "/fw.bin")
    etag = resp.headers["ETag"]
    assert etag and resp.headers["Last-Modified"]
    resp, body = request(srv, "GET", "/fw.bin", {"If-None-Match": f'"other", W/{etag}'})
    assert (resp.status, body) == (304, b"")
    resp, body = request(srv, "GET", "/fw.bin", {"Range": "bytes=100-", "If-Range": etag})
    assert (resp.status, body) == (206, IMAGE[100:])
    resp, body = request(srv, "GET", "/fw.bin", {"Range": "bytes=100-", "If-Range": '"stale"'})
    assert (resp.status, body) == (200, IMAGE)
    # each request is logged as its handler ends: the last two may be logged in either order
    ignored = [r["range_ignored"] for r in srv.wait_requests(4) if r.get("range_ignored")]
    assert ignored == ["If-Range does not match"]


def test_health_endpoint_switches_up_down_slow(server):
    resp, body = request(server, "GET", "/health")
    assert (resp.status, json.loads(body)) == (200, {"status": "up"})
    server.set_health("down")
    resp, body = request(server, "GET", "/health")
    assert (resp.status, json.loads(body)) == (503, {"status": "down"})
    server.set_health("slow", delay_s=0.3)
    started = time.monotonic()
    resp, _ = request(server, "GET", "/health")
    assert resp.status == 200 and time.monotonic() - started >= 0.3
    server.set_health("up")
    assert request(server, "GET", "/health")[0].status == 200
    assert [r["health"] for r in server.wait_requests(4, "/health")] == ["up", "down", "slow", "up"]
    with pytest.raises(ValueError):
        server.set_health("sideways")


def test_malformed_requests_are_answered_logged_and_the_server_keeps_serving(server):
    assert raw_exchange(server, b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(server, b"BREW /pot HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 501 ")
    assert raw_exchange(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    assert raw_exchange(server, b"GET /fw.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").endswith(IMAGE)
    statuses = [(r["status"], r["outcome"]) for r in server.wait_requests(4)]
    assert statuses == [(400, "malformed"), (501, "error"), (414, "error"), (200, "complete")]


def test_resume_with_range_after_a_drop_gives_the_full_image(server):
    server.set_fault(FaultPlan(drop_at=7000, apply_times=1))
    first = fetch_http(server.endpoint, "/fw.bin")
    assert first.end == "reset" and len(first.data) == 7000
    rest = fetch_http(server.endpoint, "/fw.bin", {"Range": f"bytes={len(first.data)}-"})
    assert first.data + rest.data == IMAGE
    assert [r["status"] for r in server.wait_requests(2)] == [200, 206]


def test_faults_use_payload_offsets_in_range_responses(server):
    server.set_fault(FaultPlan(corrupt=[(10_005, 0xFF)], truncate_at=12_000))
    resp = fetch_http(server.endpoint, "/fw.bin", {"Range": "bytes=10000-"})
    expected = bytearray(IMAGE[10_000:12_000])
    expected[5] ^= 0xFF
    assert resp.data == bytes(expected)


def test_head_announces_a_lie_without_claiming_a_transfer(server):
    plan = FaultPlan(lie_length=123)
    server.set_fault(plan, "/fw.bin")
    resp, _ = request(server, "HEAD", "/fw.bin")
    assert resp.headers["Content-Length"] == "123"
    assert plan.stats()["transfers"] == 0


def test_per_path_plan_wins_over_the_server_plan(server):
    server.add("/other.bin", IMAGE)
    server.set_fault(FaultPlan(truncate_at=10))
    server.set_fault(FaultPlan(truncate_at=20), "/other.bin")
    assert len(fetch_http(server.endpoint, "/fw.bin").data) == 10
    assert len(fetch_http(server.endpoint, "/other.bin").data) == 20
    with pytest.raises(KeyError, match="/nothing"):
        server.set_fault(None, "/nothing")


def test_files_and_directories_are_read_per_request(http_server, tmp_path):
    srv = http_server()
    app = tmp_path / "fs" / "app"
    app.mkdir(parents=True)
    (app / "main.py").write_text("print('v1')\n")
    (tmp_path / "secret.txt").write_text("not for devices")
    srv.add_file("/manifest.json", tmp_path / "fs" / "app" / "main.py", content_type="text/x-python")
    srv.add_directory("/fs", tmp_path / "fs")
    assert request(srv, "GET", "/fs/app/main.py")[1] == b"print('v1')\n"
    (app / "main.py").write_text("print('v2')\n")
    resp, body = request(srv, "GET", "/manifest.json")
    assert (body, resp.headers["Content-Type"]) == (b"print('v2')\n", "text/x-python")
    assert raw_exchange(srv, b"GET /fs/../secret.txt HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 404 ")
    srv.remove("/manifest.json")
    assert request(srv, "GET", "/manifest.json")[0].status == 404


def test_stop_ends_a_stalled_transfer_at_once(server):
    plan = FaultPlan(stall_at=100, stall_s=60)
    server.set_fault(plan)
    outcome = {}

    def client() -> None:
        outcome["delivery"] = fetch_http(server.endpoint, "/fw.bin")

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + WAIT
    while plan.stats()["bytes_sent"] < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the transfer is now waiting before byte 100
    started = time.monotonic()
    server.stop()
    thread.join(WAIT)
    assert time.monotonic() - started < 1.5
    assert not thread.is_alive() and len(outcome["delivery"].data) == 100
    assert server.wait_requests(1)[-1]["outcome"] == "cancelled"


def test_log_file_has_one_json_line_per_record(server, tmp_path):
    request(server, "GET", "/fw.bin")
    server.wait_requests(1)
    lines = (tmp_path / "http-0.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == server.log.records
    assert records[0]["event"] == "start" and records[-1]["status"] == 200


def test_port_in_use_error_names_the_server_and_port(server):
    clash = HttpServer(port=server.endpoint.port, name="second")
    with pytest.raises(OSError, match=rf"second: cannot listen on 127\.0\.0\.1:{server.endpoint.port}"):
        clash.start()


def test_wildcard_bind_advertises_the_given_address():
    with HttpServer(host="0.0.0.0", advertise_host="192.0.2.10") as srv:
        assert srv.url == f"http://192.0.2.10:{srv.endpoint.port}"


# -- HTTPS ------------------------------------------------------------------------


def test_https_verifies_against_the_run_ca(http_server, tls_material):
    srv = http_server(tls=tls_material.cert("server"))
    srv.add("/fw.bin", IMAGE)
    resp, body = request(srv, "GET", "/fw.bin", context=tls_material.client_context())
    assert (resp.status, body) == (200, IMAGE)
    assert srv.url.startswith("https://") and srv.wait_requests(1)[-1]["tls"] is True
    localhost = http.client.HTTPSConnection("localhost", srv.endpoint.port, timeout=WAIT,
                                            context=tls_material.client_context())
    localhost.request("GET", "/fw.bin")
    assert localhost.getresponse().read() == IMAGE
    localhost.close()


@pytest.mark.parametrize("kind, client, reason", [
    ("server", "other-ca", "unable to get local issuer certificate"),
    ("expired", "run-ca", "certificate has expired"),
    ("wrong-host", "run-ca", "mismatch, certificate is not valid for '127.0.0.1'"),
])
def test_https_negative_scenarios_fail_verification(http_server, tls_material, tmp_path, kind, client, reason):
    srv = http_server(tls=tls_material.cert(kind))
    srv.add("/fw.bin", IMAGE)
    if client == "other-ca":
        context = TlsMaterial.create(tmp_path / "other", key_type="ec").client_context()
    else:
        context = tls_material.client_context()
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        request(srv, "GET", "/fw.bin", context=context)
    assert srv.log.wait_for(WAIT, event="tls-error")["error"]
    # The server keeps serving: a client that does not verify still gets the image.
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    assert request(srv, "GET", "/fw.bin", context=insecure)[1] == IMAGE


def test_plain_http_to_the_https_port_is_logged(http_server, tls_material):
    srv = http_server(tls=tls_material.cert("server"))
    raw_exchange(srv, b"GET / HTTP/1.1\r\n\r\n")
    assert "SSL" in srv.log.wait_for(WAIT, event="tls-error")["error"]


def test_tls_material_files_and_names(tls_material):
    assert tls_material.ca_file.read_bytes() == tls_material.ca_pem
    server, expired, wrong = (tls_material.cert(k) for k in ("server", "expired", "wrong-host"))
    assert {"localhost", "127.0.0.1"} <= set(server.hosts)
    assert wrong.hosts == (WRONG_HOST,)
    assert expired.not_after < dt.datetime.now(dt.timezone.utc) < server.not_after
    assert server.key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyError, match="'nope'"):
        tls_material.cert("nope")


def test_a_kept_ca_is_the_same_for_every_run_and_processes_starting_at_once(tmp_path):
    import concurrent.futures
    import subprocess
    import sys

    ca_dir = tmp_path / "ca"
    code = ("import sys; from harness.servers.tls import CertificateAuthority as C; "
            "sys.stdout.write(C.load_or_create(sys.argv[1], key_type='ec').cert_pem.decode())")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pems = list(pool.map(lambda _: subprocess.run([sys.executable, "-c", code, str(ca_dir)], capture_output=True,
                                                      text=True, check=True).stdout, range(4)))
    assert len(set(pems)) == 1 and "BEGIN CERTIFICATE" in pems[0]
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    # a run's leaf certificates are issued by the kept CA, so firmware built with ca.pem trusts them
    material = TlsMaterial.create(tmp_path / "run", key_type="ec", ca_dir=ca_dir)
    assert material.ca_pem.decode() == pems[0]
    srv = HttpServer(tls=material.cert("server"))
    srv.start()
    try:
        srv.add("/fw.bin", IMAGE)
        assert request(srv, "GET", "/fw.bin", context=ssl.create_default_context(cafile=str(ca_dir / "ca.pem")))[1] \
            == IMAGE
    finally:
        srv.stop()
    (ca_dir / "ca.key").write_text("not a key")
    with pytest.raises(ValueError, match="does not load"):
        TlsMaterial.create(tmp_path / "run2", key_type="ec", ca_dir=ca_dir)


def test_hil_ca_prints_the_kept_ca(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("HIL_CA_DIR", str(tmp_path / "kept"))
    assert main(["ca"]) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(tmp_path / "kept" / "ca.pem") and "BEGIN CERTIFICATE" in open(path).read()
    assert main(["ca"]) == 0 and capsys.readouterr().out.strip() == path
    monkeypatch.delenv("HIL_CA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from harness.servers.tls import kept_ca_dir

    assert kept_ca_dir() == tmp_path / "data" / "esp-ota-hil" / "ca"
