"""Every fix a check suggests is valid for the run's framework (issue 17): each code span (`...`) that is not an
`atlas` command compiles as Python, and a plain loop or an Accelerate run is never told to use Lightning."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from test_diag_rules import CASES

from atlas_diagnostics import RunInfo, diagnose

FRAMEWORKS = ("lightning", "accelerate", "pytorch")
SPAN = re.compile(r"`([^`]+)`")
# spans that name things rather than run them: a parameter, a setting, a path, a module, a method (`.item()`)
NAME = re.compile(r"^[\w.\[\]'\"-]+$|^\w+=[\w.'\"]+$|^\w+ \w+$|^\.\w+\(\)$")
SHELL = ("atlas ", "atlas-collector", "py-spy ", "pip ", "nvidia-smi", "torchrun ")


def compiles(span: str) -> None:
    """A fragment compiles where it belongs: inside a method and a loop (`return`, `break`); a block header
    (`with torch.no_grad():`) with a body."""
    body = span + ("\n    pass" if span.rstrip().endswith(":") else "")
    code = "def _f(self, x):\n    for _ in ():\n" + "".join(f"        {line}\n" for line in body.splitlines())
    compile(code, "<suggestion>", "exec")


def suggestions(check: str, framework: str) -> list[str]:
    kwargs: dict[str, Any] = CASES[check][0]()
    run = kwargs.get("run_info") or RunInfo()
    kwargs["run_info"] = replace(run, framework=framework)
    return [i.suggestion for i in diagnose(**kwargs) if i.check == check]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("check", sorted(CASES))
def test_every_code_span_compiles_for_the_framework(check: str, framework: str) -> None:
    texts = suggestions(check, framework)
    assert texts, f"{check} did not fire"
    for text in texts:
        for span in SPAN.findall(text):
            if span.startswith(SHELL) or NAME.match(span):
                continue  # atlas commands are parsed against the real CLI in tests/cli; names are not code
            try:
                compiles(span)
            except SyntaxError as exc:
                pytest.fail(f"{check} ({framework}) suggests code that is not Python: `{span}` ({exc.msg})")
        if framework != "lightning":
            assert "lightning" not in text.lower() and "Trainer(" not in text, (check, framework, text)
