from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="needs mammohybrid[web]")

from mammohybrid.serve.security import (
    AccessPolicy,
    content_security_policy,
    host_name,
    new_token,
)


@pytest.mark.parametrize(("host", "name"), [("127.0.0.1:8000", "127.0.0.1"),
                                            ("LocalHost", "localhost"), ("[::1]:8000", "::1"),
                                            ("[::1]", "::1"), ("::1", "::1"),
                                            ("evil.example:80", "evil.example"), ("", "")])
def test_host_names(host: str, name: str) -> None:
    assert host_name(host) == name


def test_a_server_answers_this_machine_its_host_and_the_allowed_names() -> None:
    policy = AccessPolicy.for_server("0.0.0.0", ["Mammo.LAN", "[fd00::5]"], token="t")
    assert policy.hosts == {"127.0.0.1", "localhost", "::1", "0.0.0.0", "mammo.lan", "fd00::5"}


def test_the_printed_address_carries_the_token() -> None:
    assert AccessPolicy.for_server("::1", token="a b").address("::1", 8000) == \
        "http://[::1]:8000/?token=a+b"
    assert AccessPolicy.for_server("127.0.0.1").address("127.0.0.1", 80) == \
        "http://127.0.0.1:80/"


def test_tokens_are_random_and_compared_whole() -> None:
    token = new_token()
    assert len(token) == 48 and token != new_token()
    policy = AccessPolicy.for_server("127.0.0.1", token=token)
    assert policy.token_matches(token)
    assert not policy.token_matches(token[:-1]) and not policy.token_matches(None)
    assert AccessPolicy.for_server("127.0.0.1", token=None).token_matches(None)


def test_the_policy_allows_only_the_pages_own_script_and_style() -> None:
    page = "<style>b{}</style><script>go()</script><script>more()</script>"
    policy = content_security_policy(page)
    script, = [part for part in policy.split("; ") if part.startswith("script-src")]
    assert script.count("'sha256-") == 2 and "unsafe" not in policy
    assert "script-src 'none'" in content_security_policy("<p>no script</p>")
