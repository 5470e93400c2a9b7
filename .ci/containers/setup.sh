#!/usr/bin/env bash
# Copied unchanged (but for this header) from the containers kit measured on these machines
# (../shared/containers), so that the repository stands on its own: CI and
# `make test-containers` run this copy and never read ../shared. See README.md here.
#
# Make `docker compose` files runnable on this kind of machine, where no container registry
# can be reached and `docker` is a client without an engine: podman from Debian, podman-compose
# from PyPI, a debian:bookworm base image made with debootstrap from the apt mirror this
# machine already uses, and stand-ins for postgres:15, redis:7(-alpine) and python:3.11-slim
# built from Debian packages and tagged with those names. Idempotent; about 3 minutes the
# first time. Needs root. Prints the line to put in front of compose commands.
#
#   .ci/containers/setup.sh
#   export PATH=$KIT/venv/bin:$PATH BUILDAH_FORMAT=docker PODMAN_COMPOSE_DOCKER_COMPOSE_COMPAT=1
#   podman-compose --podman-path "$KIT/podman-shim" up -d --build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KIT=${CONTAINERS_KIT_DIR:-/var/tmp/containers-kit}
mkdir -p "$KIT"
t0=$(date +%s); say() { echo "[containers $(( $(date +%s) - t0 ))s] $*"; }

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing podman, runc, buildah, debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc buildah \
    fuse-overlayfs slirp4netns uidmap catatonit netavark aardvark-dns containernetworking-plugins \
    iptables debootstrap >/dev/null
fi

# This VM: root cannot raise rlimits (no CAP_SYS_RESOURCE), podman caps nproc at 32768, and
# crun refuses the hybrid cgroup layout, so runc; no systemd, so cgroupfs and file events.
nofile=$(ulimit -Hn)
mkdir -p /etc/containers/registries.conf.d
cat > /etc/containers/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > /etc/containers/registries.conf.d/99-short-names.conf <<CONF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
CONF

if [ ! -x "$KIT/venv/bin/podman-compose" ]; then
  say "podman-compose into $KIT/venv"
  python3 -m venv "$KIT/venv"
  "$KIT/venv/bin/pip" install -q podman-compose==1.6.0
fi
cp "$here/podman-shim" "$KIT/podman-shim"; chmod +x "$KIT/podman-shim"

# The apt mirror this machine uses (plain http), read from its own apt sources.
sources=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
uris=$(printf '%s\n' "$sources" | grep -oE '^(URIs:|deb) +[^ ]+' | awk '{print $2}' | grep -i debian || true)
mirror=$(printf '%s\n' "$uris" | grep -v security | head -n1)
security=$(printf '%s\n' "$uris" | grep security | head -n1)
[ -n "$mirror" ] || { echo "no apt mirror found in /etc/apt" >&2; exit 1; }

# HTTPS from containers goes through the same proxy as the host: carry the host's extra CAs
# into the base image, and rebuild everything when they change (they may change per boot).
cahash=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-16)
have=$(podman image inspect localhost/debian:bookworm --format '{{index .Labels "local.cahash"}}' 2>/dev/null || true)
if [ "$cahash" != "$have" ]; then
  say "base image debian:bookworm from $mirror"
  root="$KIT/rootfs"; rm -rf "$root"; mkdir -p "$KIT/debootstrap-cache"
  debootstrap --variant=minbase --cache-dir="$KIT/debootstrap-cache" bookworm "$root" "$mirror" >"$KIT/debootstrap.log" 2>&1
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror"
    [ -n "$security" ] && printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$security"
  } > "$root/etc/apt/sources.list.d/debian.sources"
  for f in /etc/apt/apt.conf.d/*; do case "$(basename "$f")" in docker-*|*proxy*|*artifact*) cp "$f" "$root/etc/apt/apt.conf.d/";; esac; done
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/*
  : > "$root/etc/hostname"; : > "$root/etc/resolv.conf"
  tar -C "$root" --numeric-owner -c . | podman import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL local.cahash=$cahash" - localhost/debian:bookworm >/dev/null
  rm -rf "$root"
  for t in debian:bookworm debian:12; do podman tag localhost/debian:bookworm "docker.io/library/$t"; done
  rebuild=--no-cache
fi

export BUILDAH_FORMAT=docker
for image in postgres redis python; do
  if [ -n "${rebuild:-}" ] || ! podman image exists "localhost/standin-$image:latest"; then
    say "stand-in $image"
    podman build ${rebuild:-} -q -t "localhost/standin-$image:latest" "$here/images/$image" >/dev/null
  fi
done
for t in postgres:15 postgres:15-alpine postgres:15-bookworm; do podman tag localhost/standin-postgres:latest "docker.io/library/$t"; done
for t in redis:7 redis:7-alpine redis:7.0 redis:alpine redis:latest; do podman tag localhost/standin-redis:latest "docker.io/library/$t"; done
python_tags="python:3.11-slim python:3.11 python:3.11-slim-bookworm python:3.11-bookworm"
for v in $(seq 0 20); do python_tags="$python_tags python:3.11.$v-slim python:3.11.$v-slim-bookworm"; done
for t in $python_tags; do podman tag localhost/standin-python:latest "docker.io/library/$t"; done

podman run --rm localhost/debian:bookworm true
say "ready. Use:"
echo "export PATH=$KIT/venv/bin:\$PATH BUILDAH_FORMAT=docker PODMAN_COMPOSE_DOCKER_COMPOSE_COMPAT=1"
echo "podman-compose --podman-path $KIT/podman-shim -f docker-compose.yml up -d --build"
