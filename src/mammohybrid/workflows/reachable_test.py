import socket

import pytest

from mammohybrid.workflows.reachable import split_address, unreachable


@pytest.mark.parametrize(("address", "where"), [
    ("127.0.0.1:1", ("127.0.0.1", 1)), ("ray://head.lan:10001", ("head.lan", 10001)),
    ("[::1]:6379", ("::1", 6379)), ("http://127.0.0.1:1", ("127.0.0.1", 1)),
    ("https://mlflow.lan/path", ("mlflow.lan", 443)), ("http://mlflow.lan", ("mlflow.lan", 80)),
    ("auto", None), ("local", None), ("host:99999", None), ("host:port", None)])
def test_addresses_and_their_ports(address, where):
    assert split_address(address) == where


def test_a_listening_port_is_reachable_and_a_closed_one_refused(closed_port):
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert unreachable("127.0.0.1", server.getsockname()[1]) is None
    assert unreachable("127.0.0.1", closed_port) == "connection refused"


def test_an_unknown_host_and_a_silent_one_are_said_so(monkeypatch):
    def lookup_fails(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", lookup_fails)
    assert unreachable("nowhere.invalid", 1) == "unknown host (Name or service not known)"

    def silent(address, timeout):
        assert timeout == 5.0  # bounded: never the system's minutes
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    assert unreachable("10.255.255.1", 6379) == "no answer within 5 s"
