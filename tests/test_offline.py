"""No network unless asked: a scan, `generate` and `calibrate` on a local model finish with every socket connection
refused, with ``HF_HUB_OFFLINE`` unset, and never even try to connect."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.conftest import tiny_scan_args

runner = CliRunner()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt (and name lookup) fails and is recorded; the hub's offline switches are off."""
    import huggingface_hub.constants

    attempts: list[str] = []

    def refuse(what: str):
        def fail(*args, **kwargs):
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(101, f"network is unreachable (test: {what} refused)")

        return fail

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once at import otherwise
    return attempts


def test_the_guard_refuses_connections(no_network: list[str]) -> None:
    with pytest.raises(OSError, match="refused"):
        socket.create_connection(("pypi.org", 443), timeout=1)
    with pytest.raises(OSError, match="refused"):
        socket.socket().connect(("127.0.0.1", 9))
    assert len(no_network) == 2  # the guard itself works, so an empty record below means no attempt


def test_scan_generate_and_calibrate_need_no_network(
    tiny_model_dir: Path, numbers_file: Path, tmp_path: Path, no_network: list[str]
) -> None:
    base = ["--base", str(tiny_model_dir), "--device", "cpu"]
    js = tmp_path / "scan.json"
    # the default scan (default batteries, null arm, calibration lookup), only small
    res = runner.invoke(app, ["scan", str(numbers_file), *base, *tiny_scan_args(rows=8, seeds=1), "--json", str(js)])
    assert res.exit_code in (0, 1), res.output
    assert json.loads(js.read_text())["verdict"]["level"] in ("clean", "low", "medium", "high")

    out = tmp_path / "gen.jsonl"
    res = runner.invoke(app, ["generate", str(out), "--teacher", str(tiny_model_dir), "--rows", "8", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "gen.manifest.json").read_text())["generated"] == 8

    args = [*base, "--max-rows", "8", "--batch-size", "4", "--draws", "4", "--decoys", "", "--traits", "animal"]
    res = runner.invoke(app, ["calibrate", *args, "--rank", "4", "--alpha", "8"])
    assert res.exit_code == 0, res.output
    assert "4 null pairs, 0 decoys" in res.output

    assert no_network == []  # not one connection was even attempted
