"""The Makefile's file targets rebuild when their options change, and only then: run against
a stand-in `bnn` that logs its calls and writes the files each stage would."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_BNN = """#!/bin/sh
echo "bnn $*" >> "$BNN_LOG"
out=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
case $1 in
  train) mkdir -p "$out" && touch "$out/best.pt";;
  fold) mkdir -p "$out" && touch "$out/manifest.json";;
  rtl) mkdir -p "$out" && touch "$out/rtl.json";;
esac
"""


@pytest.fixture
def make(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup-system.sh").write_text("true\n")
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "bnn").write_text(FAKE_BNN)
    (bin_ / "bnn").chmod(0o755)
    stamp = tmp_path / ".venv" / ".bnncore-setup"
    stamp.touch()
    os.utime(stamp, (2e9, 2e9))                        # newer than pyproject.toml: no reinstall
    log = tmp_path / "log"

    def run(*args):
        log.write_text("")
        subprocess.run(["make", "-s", *args], cwd=tmp_path, check=True, capture_output=True,
                       env=dict(os.environ, BNN_LOG=str(log)))
        return [l.split()[1] for l in log.read_text().splitlines() if l.split()[1] != "data"]
    return run


def test_targets_rebuild_when_their_options_change(make):
    assert make("rtl") == ["train", "fold", "rtl"]
    assert make("rtl") == []                                           # up to date
    assert make("rtl", "TARGET_CYCLES=64") == ["rtl"]                 # an option of the RTL
    assert make("rtl", "TARGET_CYCLES=64") == []
    assert make("rtl", "TARGET_CYCLES=64", "DEMO_TOPOLOGY=784-32-10") == ["train", "fold", "rtl"]
    # back to the first network: its run is still there, so it is folded again, not retrained
    assert make("rtl", "TARGET_CYCLES=64") == ["fold", "rtl"]
    assert make("rtl", "TARGET_CYCLES=64", 'RTL_ARGS=--fold "16,49;16,64;10,64"') == ["rtl"]
    assert make("rtl", "TARGET_CYCLES=64", 'RTL_ARGS=--fold "16,49;16,64;10,64"') == []
