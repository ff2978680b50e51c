#!/usr/bin/env bash
# Installs the Debian packages icasweep needs to build, test and analyse,
# only those that are missing (so it is quick on a machine that has them).
# Slurm's daemons are installed by the Slurm test itself, only when it runs.
set -euo pipefail
pkgs=(build-essential cmake git pkg-config
      libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools
      libopenblas-dev libopenblas-openmp-dev libdnnl-dev libyaml-dev librandom123-dev
      python3 python3-h5py python3-numpy python3-matplotlib python3-pytest
      python3-pandas python3-xarray python3-scipy python3-statsmodels
      clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: these packages are missing and installing needs root: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
# Another process (unattended upgrades, a parallel job) may hold the apt
# lock for a while: wait for it rather than fail.
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
