#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing,
# builds, runs every test (unit, CLI, MPI sweep, Slurm, a cluster of hosts
# in namespaces, analysis), then
# builds again with AddressSanitizer + UBSan and reruns the C tests and the
# CLI test under them.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DICAS_SANITIZE=ON
cmake --build build-asan -j"$jobs"
# Not rerun here: test_fuzz builds its targets with ASan and UBSan itself;
# test_cluster_user builds the program twice more, as a user, and tests the
# install, not the code;
# test_crash and test_enospc start hundreds of processes (minutes under ASan)
# and test the process-level promise, which test_damaged checks under ASan.
# Leak checking is off: Open MPI and libgomp keep process-lifetime
# allocations that LeakSanitizer reports as leaks.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -E 'test_sweep|test_slurm|test_multinode|test_analysis|test_crash|test_enospc|test_fuzz|test_cluster_user'
