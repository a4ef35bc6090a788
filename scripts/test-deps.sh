#!/bin/sh
# System packages the test suite talks to for real: sshd, a Docker engine,
# a registry, a static busybox for FROM-scratch images, headless Chromium
# (renders the report page). Idempotent: installs
# only what is missing (needs root and apt-get, as on CI).
set -eu
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
dpkg -s busybox-static >/dev/null 2>&1 || missing="$missing busybox-static"
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: missing$missing; install them (Debian: apt-get install$missing)" >&2
    exit 0
fi
echo "test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q $missing
