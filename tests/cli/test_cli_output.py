"""The CLI's one output path (`atlas_cli._app.output`, `Result`) and its typed client (`CollectorClient`), without a
collector: a small click group over the real decorator, and a stub in place of the gRPC one."""
from __future__ import annotations

import json
import math
import pathlib
import re
from typing import Any, Iterator

import click
import grpc
import pytest
from click.testing import CliRunner

from atlas_cli._app import Ctx, Result, output
from atlas_cli._client import TIMEOUT_S, CollectorClient, NotFound, Unimplemented
from atlas_proto.v1 import query_pb2 as qpb

CLI_DIR = pathlib.Path(__file__).resolve().parents[2] / "atlas_cli"


@click.group()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def app(ctx: click.Context, as_json: bool) -> None:
    ctx.obj = Ctx(collector="localhost:1", token=None, tls_ca=None, json=as_json)


@app.command()
@output([("name", "NAME"), ("loss", "LOSS")])
def rows(obj: Ctx) -> list[dict[str, Any]]:
    return [{"name": "a", "loss": 0.5}, {"name": "b", "loss": math.inf}]


@app.command()
@output(clean_numbers=False)
def raw(obj: Ctx) -> dict[str, Any]:
    return {"score": 85.0}


@app.command()
@output()
def outcome(obj: Ctx) -> Result:
    data = {"synced": 1, "failed": 1}
    return Result(data, text=lambda: click.echo("1 synced"), notes=["warning: one file kept"],
                  fail="1 of 2 files could not be uploaded")


@app.command()
@output(stream=True)
def events(obj: Ctx) -> Iterator[Result]:
    for n in range(3):
        yield Result({"event": "epoch", "epoch": n}, text=lambda n=n: click.echo(f"epoch {n}"))
    raise KeyboardInterrupt  # Ctrl-C while following


@app.group(invoke_without_command=True)
@output()
def things(obj: Ctx) -> list[dict[str, Any]]:
    return [{"id": "t1"}]


@things.command("show")
@output(kv=True)
def show_thing(obj: Ctx) -> dict[str, Any]:
    return {"id": "t1", "size": 2.0}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_rows_print_as_a_table_or_as_json_with_the_flag_before_or_after_the_command() -> None:
    table = invoke("rows")
    assert table.exit_code == 0, table.output
    assert table.output.splitlines() == ["NAME  LOSS", "a     0.5", "b     inf"]
    for args in (("rows", "--json"), ("--json", "rows")):
        done = invoke(*args)
        assert json.loads(done.output) == [{"name": "a", "loss": 0.5}, {"name": "b", "loss": None}]  # no Inf in JSON


def test_clean_numbers_can_be_turned_off_for_json_that_keeps_its_floats() -> None:
    assert invoke("raw", "--json").output == '{\n  "score": 85.0\n}\n'


def test_a_result_prints_its_text_then_its_notes_then_fails_after_the_data() -> None:
    text = invoke("outcome")
    assert text.exit_code == 1
    assert text.stdout == "1 synced\n"
    assert text.stderr == "warning: one file kept\nError: 1 of 2 files could not be uploaded\n"
    done = invoke("outcome", "--json")
    assert done.exit_code == 1
    assert json.loads(done.stdout) == {"synced": 1, "failed": 1}
    assert "Error: 1 of 2 files could not be uploaded" in done.stderr


def test_a_stream_prints_each_result_as_it_comes_and_ctrl_c_exits_130() -> None:
    text = invoke("events")
    assert (text.exit_code, text.stdout) == (130, "epoch 0\nepoch 1\nepoch 2\n")
    lines = invoke("events", "--json").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"event": "epoch", "epoch": n} for n in range(3)]  # JSON Lines


def test_a_groups_json_flag_carries_to_its_subcommand() -> None:
    assert json.loads(invoke("things", "--json").output) == [{"id": "t1"}]
    assert json.loads(invoke("things", "--json", "show").output) == {"id": "t1", "size": 2}
    assert invoke("things", "show").output == "id    t1\nsize  2\n"


def test_no_command_handles_json_or_calls_an_rpc_by_name_itself() -> None:
    """Every `--json` comes from `output`; every RPC goes through a typed `CollectorClient` method."""
    offenders = []
    for path in sorted(CLI_DIR.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in (r'"--json"', r"\bas_json\b", r'\.call\("', r"\btry_call\b", r"getattr\(self\.stub"):
            if path.name != "_app.py" and re.search(pattern, text):
                offenders.append(f"{path.relative_to(CLI_DIR)}: {pattern}")
    assert offenders == []


# ------------------------------------------------------------------------------------------ the typed client

class Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class Stub:
    """QueryServiceStub's shape: records each call; answers `answer` or raises `failure`."""

    def __init__(self, answer: Any = None, failure: Failure | None = None) -> None:
        self.answer, self.failure, self.calls = answer, failure, []

    def __getattr__(self, method: str) -> Any:
        def rpc(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            self.calls.append((method, request, timeout, metadata))
            if self.failure is not None:
                raise self.failure
            return self.answer

        return rpc


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_query_rpc_has_one_typed_method_that_calls_it() -> None:
    service = qpb.DESCRIPTOR.services_by_name["QueryService"]
    for method in service.methods:
        stub = Stub(answer=object())
        client = CollectorClient("collector:1", token="t0k", stub=stub)
        typed = getattr(client, _snake(method.name))
        request = getattr(qpb, method.input_type.name, None)
        request = request() if request is not None else None
        assert typed(request) is stub.answer
        assert stub.calls == [(method.name, request, TIMEOUT_S, [("authorization", "Bearer t0k")])]


@pytest.mark.parametrize(("code", "error", "message"), [
    (grpc.StatusCode.NOT_FOUND, NotFound, "no run matches 'x'"),
    (grpc.StatusCode.UNIMPLEMENTED, Unimplemented, "does not answer this query (UNIMPLEMENTED)"),
    (grpc.StatusCode.UNAVAILABLE, click.ClickException, "cannot reach the Atlas collector at collector:1"),
    (grpc.StatusCode.UNAUTHENTICATED, click.ClickException, "missing or wrong token"),
    (grpc.StatusCode.INTERNAL, click.ClickException, "failed: INTERNAL: boom"),
])
def test_a_grpc_failure_becomes_one_line_that_says_what_to_do(code: grpc.StatusCode, error: type,
                                                              message: str) -> None:
    details = {grpc.StatusCode.NOT_FOUND: "no run matches 'x'", grpc.StatusCode.INTERNAL: "boom"}.get(code, "")
    client = CollectorClient("collector:1", stub=Stub(failure=Failure(code, details)))
    with pytest.raises(error, match=re.escape(message)):
        client.get_run(qpb.RunRef(run="x"))


def test_if_served_is_none_only_when_the_collector_lacks_the_rpc() -> None:
    older = CollectorClient("collector:1", stub=Stub(failure=Failure(grpc.StatusCode.UNIMPLEMENTED)))
    assert older.if_served(older.list_metrics, qpb.RunRef(run="x")) is None
    away = CollectorClient("collector:1", stub=Stub(failure=Failure(grpc.StatusCode.UNAVAILABLE)))
    with pytest.raises(click.ClickException, match="cannot reach"):
        away.if_served(away.list_metrics, qpb.RunRef(run="x"))
