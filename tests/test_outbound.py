"""The outbound policy (SSRF): what counts as private, allowlists, DNS answers checked at
connect time, redirects, and the dataset URL fetch that uses it. Real sockets on loopback."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from townhall.datastore.tasks import FetchError, download
from townhall.outbound import OutboundPolicy, OutboundRefused, guarded_client


class _Files(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - one server per test, cleared by the fixture
    redirect_to = ""

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        body = b"id,kind\n1,oak\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def file_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Files.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not OutboundPolicy().address_allowed(ipaddress.ip_address(address))
    assert OutboundPolicy(allow_private=True).address_allowed(ipaddress.ip_address(address))


def test_public_addresses_and_allowlisted_networks_pass() -> None:
    policy = OutboundPolicy.build(False, ["10.20.0.0/16", "CRM.City.Internal", " "])
    assert policy.address_allowed(ipaddress.ip_address("93.184.215.14"))
    assert policy.address_allowed(ipaddress.ip_address("10.20.3.4"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.0.1"))
    assert policy.allowed_hosts == frozenset({"crm.city.internal"})
    policy.check_literal("crm.city.internal")
    with pytest.raises(OutboundRefused, match="TOWNHALL_OUTBOUND_ALLOWED_HOSTS"):
        policy.check_literal("localhost")
    with pytest.raises(OutboundRefused):
        policy.check_literal("[::1]")


def test_a_name_is_checked_by_what_it_resolves_to(file_server: str) -> None:
    url = file_server.replace("127.0.0.1", "localhost") + "/x.csv"
    with guarded_client(OutboundPolicy(), timeout=5) as client, pytest.raises(OutboundRefused):
        client.get(url)
    assert _Files.hits == []
    allowed = OutboundPolicy.build(False, ["localhost"])
    with guarded_client(allowed, timeout=5) as client:
        assert client.get(url).status_code == 200
    assert _Files.hits == ["/x.csv"]


def test_the_dataset_fetch_refuses_private_addresses(file_server: str, tmp_path: Path) -> None:
    target = tmp_path / "download"
    with pytest.raises(FetchError, match=r"refused: .*127\.0\.0\.1"):
        download(f"{file_server}/trees.csv", target, max_bytes=1000)
    assert _Files.hits == [], "refused before any request was sent"
    sha, size = download(
        f"{file_server}/trees.csv",
        target,
        max_bytes=1000,
        outbound=OutboundPolicy.build(False, ["127.0.0.1/32"]),
    )
    assert size == len(b"id,kind\n1,oak\n")
    assert len(sha) == 64


def test_a_redirect_to_a_private_address_is_refused(file_server: str, tmp_path: Path) -> None:
    """An allowed host may not bounce the fetch to one that is not (127.0.0.2 is loopback
    too, but outside the allowlist)."""
    port = file_server.rsplit(":", 1)[1]
    _Files.redirect_to = f"http://127.0.0.2:{port}/trees.csv"
    with pytest.raises(FetchError, match=r"refused: .*127\.0\.0\.2"):
        download(
            f"{file_server}/redirect",
            tmp_path / "download",
            max_bytes=1000,
            outbound=OutboundPolicy.build(False, ["127.0.0.1/32"]),
        )
    assert _Files.hits == ["/redirect"]
