#!/bin/sh
# Debian packages hkrt's set-up needs: python3 with venv and headers, gcc (the emulator's C parts),
# and debootstrap for the private toolchain.
# Installs only what is missing; needs root to install anything.
set -e
missing=""
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
python3 -c 'import sysconfig, os; exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  >/dev/null 2>&1 || missing="$missing python3-dev"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "hkrt set-up needs these Debian packages:$missing (run as root, or install them)" >&2
  exit 1
fi
echo "[deps] apt-get install$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
