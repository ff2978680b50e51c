import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def binary():
    path = os.environ.get("ICASWEEP") or os.path.join(ROOT, "build", "icasweep")
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def smoke_file(tmp_path_factory):
    """A result file made by the real binary from the smoke grid."""
    exe = binary()
    if exe is None:
        pytest.fail("the icasweep binary is missing: build it, or set ICASWEEP")
    out = tmp_path_factory.mktemp("smoke") / "smoke.h5"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    cmd = [exe, "sweep", os.path.join(ROOT, "jobs", "grids", "smoke.yaml"), "-o", str(out),
           "--heartbeat", "0"]
    if shutil.which("mpirun"):
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", "2"] + cmd
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=300)
    return str(out)
