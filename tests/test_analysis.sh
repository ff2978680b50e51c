#!/usr/bin/env bash
# The h5py analysis (loader, figures, report) under pytest, on files made
# by the binary inside the tests.
set -u
cd "${ICAS_SOURCE_DIR:?}"
export MPLBACKEND=Agg
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider analysis/tests
