"""Fixtures: result files made by the real icasweep binary.

The binary is $ICASWEEP, else <repo>/build/icasweep. When ICASWEEP is set
(CTest sets it) a missing binary is an error; when it is not set and the
default build is absent, the tests that need the binary are skipped with the
reason, and the synthetic-file tests still run.
"""
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.dirname(HERE)
ROOT = os.path.dirname(ANALYSIS)
SMOKE_GRID = os.path.join(ROOT, "jobs", "grids", "smoke.yaml")
sys.path.insert(0, ANALYSIS)
sys.path.insert(0, HERE)

# The `train` fixture: the smoke grid's settings.
TRAIN_ARGS = ["--dims", "5", "--points", "8", "--layers", "1", "--heads", "2", "--embd", "16",
              "--steps", "20", "--batch", "16", "--lr", "1e-3", "--eval-batch", "16",
              "--eval-noise", "0,0.5,1", "--seed", "0", "-q"]


@dataclass
class MadeFile:
    path: str
    log: str


def _binary():
    exe = os.environ.get("ICASWEEP")
    if exe:
        if not os.access(exe, os.X_OK):
            pytest.fail(f"ICASWEEP={exe} is not an executable file")
        return exe
    exe = os.path.join(ROOT, "build", "icasweep")
    if not os.access(exe, os.X_OK):
        pytest.skip(f"icasweep binary not found: {exe} does not exist and ICASWEEP is not set "
                    f"(build with: cmake -S {ROOT} -B {ROOT}/build && cmake --build {ROOT}/build)")
    return exe


def _run(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return p.returncode, f"$ {' '.join(cmd)}\n(exit {p.returncode})\n{p.stdout}{p.stderr}"


def _train(exe, out_dir):
    path = os.path.join(out_dir, "run.h5")
    rc, log = _run([exe, "train", *TRAIN_ARGS, "-o", path], out_dir)
    if rc != 0 or not os.path.exists(path):
        pytest.fail(f"icasweep train could not make a result file:\n{log}")
    return MadeFile(path, log)


@pytest.fixture(scope="session")
def binary_file(tmp_path_factory):
    """The smoke grid swept by the binary on one rank (8 runs). A failed
    sweep fails every test that uses it: nothing else stands in for the
    grid."""
    exe = _binary()
    out_dir = str(tmp_path_factory.mktemp("sweep"))
    path = os.path.join(out_dir, "x.h5")
    rc, log = _run([exe, "sweep", SMOKE_GRID, "-o", path, "-q"], out_dir)
    if rc != 0 or not os.path.exists(path):
        pytest.fail(f"icasweep sweep could not make the smoke-grid file:\n{log}")
    return MadeFile(path, log)


@pytest.fixture(scope="session")
def train_file(tmp_path_factory):
    """One run made by `icasweep train`."""
    return _train(_binary(), str(tmp_path_factory.mktemp("train")))
