"""The wire contract is reproducible; the CLI and the collector stay free of torch and fast to start."""
from __future__ import annotations

import filecmp
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_committed_generated_code_matches_a_fresh_generation(tmp_path: pathlib.Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = sorted((tmp_path / "atlas_proto" / "v1").glob("*_pb2*"))
    committed = sorted((ROOT / "proto" / "atlas_proto" / "v1").glob("*_pb2*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    stale = [p.name for p in committed if not filecmp.cmp(p, tmp_path / "atlas_proto" / "v1" / p.name, shallow=False)]
    assert not stale, f"regenerate with `python scripts/gen_proto.py`: {stale} differ from the .proto sources"


PROBE = """
import sys
{body}
heavy = sorted(m for m in ('torch', 'lightning', 'pytorch_lightning', 'accelerate', 'codecarbon') if m in sys.modules)
assert not heavy, heavy
print('ok')
"""


def _probe(body: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE.format(body=body)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_cli_help_and_every_command_help_import_no_torch() -> None:
    _probe("from atlas_cli import cli\n"
           "for args in (['--help'], ['runs', '--help'], ['runs', 'show', '--help'], ['demo', '--help']):\n"
           "    cli.main(args, prog_name='atlas', standalone_mode=False)")


def test_collector_imports_no_torch() -> None:
    _probe("import atlas_collector, atlas_collector._server, atlas_collector._main, atlas_collector._queries")
