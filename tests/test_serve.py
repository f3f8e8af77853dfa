"""`tiergate serve`: granian by default, uvicorn on request, both building the served app (lean decision
routes, TCP_NODELAY on the listeners, the heap frozen after start-up) in every worker."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from click.testing import CliRunner

from gateway import cli
from gateway.app import nodelay_on_listeners


class FakeGranian:
    made: list[dict[str, Any]] = []

    def __init__(self, target: str, **kwargs: Any) -> None:
        FakeGranian.made.append({"target": target, **kwargs})

    def serve(self) -> None:
        FakeGranian.made[-1]["served"] = True


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # Set first so that monkeypatch puts back what `serve` exports.
    monkeypatch.setenv("TIERGATE_PORT", "8000")
    monkeypatch.setenv("TIERGATE_HOST", "127.0.0.1")
    monkeypatch.delenv("TIERGATE_SERVER", raising=False)
    return monkeypatch


def test_granian_serves_by_default_with_the_served_factory(env: pytest.MonkeyPatch) -> None:
    import granian
    from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl

    FakeGranian.made.clear()
    env.setattr(granian, "Granian", FakeGranian)
    result = CliRunner().invoke(cli.main, ["serve", "--port", "8812", "--workers", "2"])
    assert result.exit_code == 0, result.output
    [made] = FakeGranian.made
    assert made["target"] == "gateway.app:create_served_app" and made["factory"] is True
    assert (made["address"], made["port"], made["workers"]) == ("127.0.0.1", 8812, 2)
    assert made["interface"] == Interfaces.ASGI and made["loop"] == Loops.auto  # uvloop where installed
    assert (made["runtime_mode"], made["task_impl"]) == (RuntimeModes.st, TaskImpl.asyncio)
    assert made["served"] is True


def test_granians_runtime_and_task_implementation_are_settings(env: pytest.MonkeyPatch) -> None:
    import granian
    from granian.constants import RuntimeModes, TaskImpl

    FakeGranian.made.clear()
    env.setattr(granian, "Granian", FakeGranian)
    env.setenv("TIERGATE_SERVER_RUNTIME_MODE", "mt")
    env.setenv("TIERGATE_SERVER_TASK_IMPL", "rust")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code == 0, result.output
    [made] = FakeGranian.made
    assert (made["runtime_mode"], made["task_impl"]) == (RuntimeModes.mt, TaskImpl.rust)
    env.setenv("TIERGATE_SERVER_RUNTIME_MODE", "many")
    refused = CliRunner().invoke(cli.main, ["serve"])
    assert refused.exit_code != 0 and "'many': one of st, mt" in refused.output


def test_uvicorn_on_request_by_flag_or_setting(env: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: list[tuple[Any, ...]] = []
    env.setattr(uvicorn, "run", lambda *args, **kwargs: served.append((args, kwargs)))
    env.setenv("TIERGATE_SERVER", "uvicorn")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = served
    assert args == ("gateway.app:create_served_app",) and kwargs["factory"] is True


def test_an_unknown_server_setting_is_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("TIERGATE_SERVER", "gunicorn")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code != 0 and "gunicorn" in result.output


def test_listeners_get_tcp_nodelay_and_hand_it_to_accepted_connections() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert nodelay_on_listeners() >= 1
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
