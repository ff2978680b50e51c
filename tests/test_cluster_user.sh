#!/usr/bin/env bash
# A cluster user without root, on one machine. Root only plays the site:
# installs Lmod, MPICH and BLIS from Debian and writes site modulefiles for
# them in a directory of this test's own. Then a user made for the test, in
# login shells: `module load` the site's MPICH and BLIS, configure (the
# source as a tarball would give it: no .git), build, run the unit tests,
# install into $HOME with the analysis package, write a modulefile; in a
# fresh login shell `module load icasweep`, sweep the smoke grid with
# MPICH's mpiexec on 2 ranks, `icasweep status`, open the file with the
# installed package and draw the report, and submit the installed Slurm
# script to a private Slurm. Checked: the installed binary's RUNPATH
# resolves MPICH and BLIS (not Open MPI, not OpenBLAS); the user wrote
# nothing outside the home and temporary directories; an MPICH + OpenBLAS
# build gives numbers bit-identical to this suite's Open MPI + OpenBLAS
# binary ($ICASWEEP); the BLIS build passes test_reference and its sweep
# agrees with OpenBLAS's (short runs: closely; the figures are printed).
# Exits 77 when it cannot play the site (not root, packages not installable).
set -u
source "$(dirname "$0")/lib.sh" || exit 1
source "$SRC/tests/slurm_env.sh" || exit 1
skip() {
  echo "SKIP: $TEST_NAME: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root to play the site (install packages, add a user)"
command -v useradd >/dev/null || skip "no useradd"
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
site_pkgs="lmod mpich libmpich-dev libblis-openmp-dev python3-venv python3-setuptools python3-wheel"
missing=()
for p in $site_pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing the site's packages: ${missing[*]}"
  { apt_get update && apt_get install -y --no-install-recommends "${missing[@]}"; } ||
    skip "cannot install ${missing[*]} (apt-get failed)"
fi
[ -r /etc/profile.d/lmod.sh ] || skip "Lmod installed but /etc/profile.d/lmod.sh is missing"

# -- the site (root) --------------------------------------------------------------
site=$(mktemp -d /tmp/icas-site.XXXXXX) || exit 1
at_exit 'rm -rf "$site"'
chmod 755 "$site"
blis_lib=/usr/lib/$arch/blis-openmp blis_inc=/usr/include/$arch/blis-openmp
mkdir -p "$site/mpich/bin" "$site/modulefiles/mpich" "$site/modulefiles/blis"
# the MPICH module's commands carry their usual names, as on a site; as
# scripts, not links: Hydra's mpiexec looks for its proxy beside argv[0]
for c in mpicc mpiexec mpirun; do
  printf '#!/bin/sh\nexec /usr/bin/%s.mpich "$@"\n' "$c" >"$site/mpich/bin/$c"
  chmod 755 "$site/mpich/bin/$c"
done
cat >"$site/modulefiles/mpich/4.0.2.lua" <<LUA
whatis("MPICH 4.0.2")
family("mpi")
prepend_path("PATH", "$site/mpich/bin")
LUA
cat >"$site/modulefiles/blis/0.9.0.lua" <<LUA
whatis("BLIS 0.9.0, OpenMP threading")
setenv("BLIS_ROOT", "$blis_lib")
prepend_path("CMAKE_LIBRARY_PATH", "$blis_lib")
prepend_path("LIBRARY_PATH", "$blis_lib")
prepend_path("LD_LIBRARY_PATH", "$blis_lib")
prepend_path("CPATH", "$blis_inc")
LUA
chmod -R a+rX "$site"

user=icas$$
home=/tmp/icas-home.$$ # under /tmp: removed with the test, whatever /home is
useradd -m -d "$home" -s /bin/bash "$user" || skip "useradd $user failed"
at_exit 'userdel -r -f "$user" >/dev/null 2>&1; rm -rf "$home"'
work=$(mktemp -d /tmp/icas-cluster.XXXXXX) || exit 1
at_exit 'rm -rf "$work"'
chmod 755 "$work"
rev=$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null || echo "test-tarball")
# the source as a release tarball holds it: no .git, no build trees
tar -C "$SRC" --exclude=./.git --exclude='./build*' --exclude=./out --exclude=__pycache__ \
  -cf "$work/src.tar" . || { bad "cannot pack the source tree"; finish; }
chmod 644 "$work/src.tar"

# as_user SCRIPT: run SCRIPT in a fresh login shell of the test's user, with
# only what a cluster login gives (plus the environment CI needs). stdout
# and stderr go to $work/SCRIPT.log, shown as it runs.
as_user() {
  local script=$1
  chmod 644 "$work/$script"
  su - "$user" -c "export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} MPLBACKEND=Agg \
    SITE=$site WORK=$work REV=$rev SLURM_CONF=${SLURM_CONF:-}; source $work/$script" \
    2>&1 | tee "$work/$script.log"
  return "${PIPESTATUS[0]}"
}

# -- 1. as the user: modules, configure, build, unit tests, install ---------------
cat >"$work/build.sh" <<'SH'
set -eo pipefail
trap 'echo "build.sh: failed at line $LINENO: $BASH_COMMAND"' ERR
module use "$SITE/modulefiles"
module load mpich blis
echo "modules loaded:"; module -t list 2>&1 | sed 's/^/  /'
mkdir -p ~/src && tar -C ~/src -xf "$WORK/src.tar"
prefix=$HOME/sw/icasweep/0.1.0
# oneDNN off: the site's BLAS computes every product, which is what this
# build is to test (with oneDNN present it would compute them instead)
cmake -S ~/src -B ~/build-blis -DBLA_VENDOR=FLAME -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DICAS_GIT_REVISION="$REV" -DICAS_INSTALL_ANALYSIS=ON -DICAS_ONEDNN=OFF |
  grep -E 'MPI_C|BLAS|HDF5:|matrix products'
cmake --build ~/build-blis -j2 >~/build-blis.log 2>&1 || { tail -30 ~/build-blis.log; false; }
# the unit tests but the three slowest (test_model, test_train and
# test_selfcorrect take 30-40 s each here, and the suite runs them against
# its own build); test_reference checks the model against PyTorch with
# this BLAS
(cd ~/build-blis && ctest -L unit -E 'test_model|test_train|test_selfcorrect' --output-on-failure |
  grep -E 'Test +#|tests passed')
cmake --install ~/build-blis >~/install.log
mkdir -p ~/modulefiles/icasweep
# the installed modulefile, with the MPI module the build used (its mpiexec)
{ echo 'depends_on("mpich/4.0.2")'; cat "$prefix/share/icasweep/modulefiles/icasweep/0.1.0.lua"; } \
  >~/modulefiles/icasweep/0.1.0.lua
# a second build, MPICH with Debian's default OpenBLAS, for the comparison
module unload blis
cmake -S ~/src -B ~/build-openblas -DICAS_GIT_REVISION="$REV" -DBUILD_TESTING=OFF |
  grep -E 'BLAS \(|matrix products'
cmake --build ~/build-openblas -j2 --target icasweep >~/build-openblas.log 2>&1 ||
  { tail -30 ~/build-openblas.log; false; }
echo "build.sh: done"
SH
start=$SECONDS
if as_user build.sh; then ok "as $user: configure, build, unit tests, install ($((SECONDS - start)) s)"
else bad "as $user: building and installing failed"; finish; fi
grep -q 'test_reference .*Passed' "$work/build.sh.log" && ok "the BLIS build passes test_reference" ||
  bad "test_reference did not pass with BLIS"
grep -q 'tests passed, 0 tests failed' "$work/build.sh.log" || bad "a unit test failed with BLIS"

# -- 2. a fresh login shell: module load icasweep, sweep, status, analysis --------
cat >"$work/run.sh" <<'SH'
set -eo pipefail
trap 'echo "run.sh: failed at line $LINENO: $BASH_COMMAND"' ERR
module use "$SITE/modulefiles" ~/modulefiles
module load icasweep
echo "modules loaded:"; module -t list 2>&1 | sed 's/^/  /'
echo "icasweep: $(command -v icasweep)"
icasweep --version
mkdir -p ~/runs && cd ~/runs
OMP_NUM_THREADS=1 mpiexec -n 2 icasweep sweep "$ICASWEEP_GRIDS/smoke.yaml" -o smoke.h5 >sweep.log 2>&1 ||
  { cat sweep.log; false; }
tail -2 sweep.log
icasweep status smoke.h5 | head -3
python=$(dirname "$(readlink -f "$(command -v icasweep-report)")")/python
"$python" - <<'PY'
import icaresults
res = icaresults.load("smoke.h5")
print(f"icaresults: {res.n_runs} runs, {res.status_counts()}; blas: {res.attrs['blas']}, "
      f"kernel {res.attrs['blas_kernel']}; mpi: {res.attrs['mpi_library'].split(';')[0]}")
PY
icasweep-report smoke.h5 --out report | tail -1
test -s report/report.md
# MPICH with OpenBLAS, the same grid, for the bit-for-bit comparison
OMP_NUM_THREADS=1 mpiexec -n 2 ~/build-openblas/icasweep sweep "$ICASWEEP_GRIDS/smoke.yaml" \
  -o smoke-openblas.h5 >sweep-openblas.log 2>&1 || { cat sweep-openblas.log; false; }
tail -1 sweep-openblas.log
echo "run.sh: done"
SH
start=$SECONDS
if as_user run.sh; then ok "fresh login: module load icasweep, sweep on 2 MPICH ranks, status, report ($((SECONDS - start)) s)"
else bad "fresh login shell run failed"; fi
installed=$home/sw/icasweep/0.1.0/bin/icasweep
grep -q "^icasweep 0.1.0 ($rev)" "$work/run.sh.log" && ok "--version shows the revision passed to cmake ($rev)" ||
  bad "--version lacks the revision $rev"

# -- 3. RUNPATH: the installed binary finds MPICH and BLIS by itself ---------------
runpath=$(readelf -d "$installed" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
echo "RUNPATH of $installed: $runpath"
libs=$(env -i PATH=/usr/bin:/bin ldd "$installed")
echo "$libs" | grep -E 'blis|mpi|blas|hdf5' | sed 's/^/  /'
case ":$runpath:" in *":$blis_lib:"*) ok "RUNPATH holds $blis_lib" ;; *) bad "RUNPATH lacks $blis_lib" ;; esac
grep -q "libblis.so.4 => $blis_lib/" <<<"$libs" && grep -q "libmpich.so" <<<"$libs" &&
  ! grep -qE 'libmpi\.so|libopenblas' <<<"$libs" && ok "with an empty environment it loads MPICH and BLIS, not Open MPI or OpenBLAS" ||
  bad "the installed binary resolves other libraries than MPICH and BLIS"
case ":$runpath:" in *"::"*) bad "RUNPATH has an empty entry (the working directory)" ;; esac

# -- 4. nothing written outside the home and temporary directories -----------------
# (a walk of the whole file system, in the background while step 5 runs)
find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /var/tmp \
  -o -path /run -o -path "$home" \) -prune -o -user "$user" -print >"$work/outside.txt" 2>/dev/null &
find_pid=$!

# -- 5. the numbers: MPICH + OpenBLAS against Open MPI + OpenBLAS, BLIS against OpenBLAS
use_mpi
(cd "$work" && "${MPIRUN[@]}" -np 2 "$BIN" sweep "$SRC/jobs/grids/smoke.yaml" -o "$work/ompi.h5" \
  >"$work/ompi.log" 2>&1) || { bad "Open MPI sweep failed"; cat "$work/ompi.log"; }
flags_ours=$("$BIN" --version | grep '^compiler_flags')
flags_user=$("$home/build-openblas/icasweep" --version | grep '^compiler_flags')
if [ "$flags_ours" != "$flags_user" ]; then
  echo "note: $BIN was built with other flags ($flags_ours; the user's: $flags_user): not compared"
elif compare_results "$work/ompi.h5" "$home/runs/smoke-openblas.h5" --require-done; then
  ok "MPICH + OpenBLAS: bit-identical to Open MPI + OpenBLAS (8 runs)"
else bad "MPICH + OpenBLAS differs from Open MPI + OpenBLAS"; fi
"$PY" - "$work/ompi.h5" "$home/runs/smoke.h5" <<'PY'

import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
attr = lambda f, k: f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else f.attrs[k]
print(f"BLIS ({attr(b, 'blas')}, kernel {attr(b, 'blas_kernel')}) against OpenBLAS "
      f"({attr(a, 'blas')}, kernel {attr(a, 'blas_kernel')}), smoke grid, 8 runs of 20 steps:")
worst = 0.0
for name in ("train/loss", "eval/tf_err", "eval/gd_err"):
    x, y = a[name][()].astype(np.float64), b[name][()].astype(np.float64)
    rel = np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), 1e-30))
    same = np.mean(x.tobytes() == y.tobytes())
    print(f"  {name}: max relative difference {rel:.2e}{' (identical)' if same else ''}")
    worst = max(worst, rel)
# float32 products summed in another order: about 1e-7 after 20 steps
# (measured); seed-to-seed differences in these numbers are above 1e-2.
# Long runs drift apart (PLATFORM.md: 7e-3 in loss after 1500 steps) and
# are compared statistically, not here.
sys.exit(0 if worst < 1e-5 else 1)
PY
if [ $? -eq 0 ]; then ok "BLIS sweep agrees with OpenBLAS's to better than 1e-5 relative"
else bad "BLIS and OpenBLAS sweeps disagree by more than 1e-5 relative (or a file is missing)"; fi

wait "$find_pid"
[ ! -s "$work/outside.txt" ] && ok "$user wrote nothing outside $home and the temporary directories" ||
  bad "$user wrote outside home and temp: $(head -20 "$work/outside.txt")"

# -- 6. the installed Slurm script, as the user, with MPICH ---------------------------
if slurm_install && slurm_start; then
  at_exit 'slurm_stop; rm -rf "${SLURM_TEST_DIR:-}"'
  cat >"$work/slurm.sh" <<'SH'
set -eo pipefail
module use "$SITE/modulefiles" ~/modulefiles
module load icasweep
cd ~/runs
sbatch --wait --ntasks=3 --overcommit --cpus-per-task=1 --time=5 --output=slurm-%j.log \
  "$ICASWEEP_SBATCH" "$ICASWEEP_GRIDS/smoke.yaml" smoke-slurm.h5 || { cat slurm-*.log; false; }
grep -E 'start|complete|to run on' slurm-*.log
SH
  # the sweep's own line says it saw 3 ranks (2 workers): srun's PMI2
  # plugin started one MPI job, not 3 singletons
  if as_user slurm.sh && all_done_once "$home/runs/smoke-slurm.h5" 8 &&
    grep -q "to run on 2 ranks" "$work/slurm.sh.log"; then
    ok "sbatch \$ICASWEEP_SBATCH from the module: one MPICH job of 3 ranks, sweep complete"
  else bad "the MPICH sweep under Slurm failed"; slurm_logs; fi
else bad "Slurm did not start"; fi

finish
