#!/usr/bin/env bash
# Install the system tools later stages need (simulators, place and route, bitstream tools).
# Idempotent: does nothing when every tool is already on PATH. As root with apt-get, installs
# the missing Debian packages; otherwise prints the exact command to run.
set -euo pipefail

# command on PATH  -> Debian package that provides it
tools=(
  "iverilog:iverilog"               # Icarus Verilog 11 (cocotb simulation)
  "ghdl:ghdl"                       # GHDL 2.0, mcode backend (VHDL simulation)
  "nextpnr-ice40:nextpnr-ice40"     # iCE40 place and route
  "icepack:fpga-icestorm"           # iCE40 bitstreams and icetime
  "make:make"
  "chromium-headless-shell:chromium-headless-shell"   # renders `bnn report` pages in the tests
)
missing=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
# icetime needs the chip database package, which installs no command of its own.
[ -d /usr/share/fpga-icestorm/chipdb ] || missing+=(fpga-icestorm-chipdb)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system tools: all present"
  exit 0
fi
cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system tools: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "system tools: installed"
else
  echo "system tools missing: ${missing[*]}" >&2
  echo "install them as root with:  $cmd" >&2
  exit 1
fi
