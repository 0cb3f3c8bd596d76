#!/usr/bin/env bash
# scripts/setup.sh MODE -- install what vmconform needs, only what is missing, then return.
#   MODE=suite: QEMU + the distribution's UEFI firmware, and a venv with vmconform
#   MODE=test : the same, plus the independent oracles the project's tests use (sgdisk, fsck.fat,
#               mtools, qemu-img) and the Python test packages (capstone, pefile, unicorn, ...), then fills
#               the asset cache: three jobs at once, each only when its part is missing or stale --
#                 xen      the nested Xen host and its domU firmwares (CPU-bound: builds, niced)
#                 releases the firmware and QEMU releases (scripts/fetch-releases; downloads)
#                 prefetch Debian's kernels, the OS probe's parts and the boot-loader payloads
#                          (scripts/prefetch_assets.py; downloads)
#               each logging to <cache>/logs/setup/JOB.log; a failed job fails the set-up (its log's tail shown)
#   test --no-cache : packages and venv only (scripts/run-tests starts the cache jobs itself, beside ruff/mypy)
#   cache JOB       : run one cache job in the foreground
# Debian packages are installed with apt-get when running as root; otherwise it says what is missing.
# The venv is .venv/ in the repository root; the cache is ${VMCONFORM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/vmconform}.
set -euo pipefail
mode=${1:-suite}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$top/.venv
say() { printf 'setup: %s\n' "$*" >&2; }

# one cache job, in the foreground; a no-op when its part of the cache is complete and current
cache_job() {
  case $1 in
    xen)
      if "$venv/bin/python" -m vmconform.assets status xen >/dev/null 2>&1; then echo "xen: cached and current"; return 0; fi
      echo "building the Xen host and its domU firmwares (a few minutes, once)"
      "$venv/bin/python" -m vmconform.assets build xen ;;
    releases)
      if "$top/scripts/fetch-releases" --check >/dev/null 2>&1; then echo "releases: cached and current"; return 0; fi
      echo "fetching the firmware and QEMU releases (scripts/fetch-releases)"
      "$top/scripts/fetch-releases" ;;
    prefetch)
      "$venv/bin/python" "$top/scripts/prefetch_assets.py" ;;
    *) say "unknown cache job '$1': give xen, releases or prefetch"; return 2 ;;
  esac
}
if [ "$mode" = cache ]; then
  [ -x "$venv/bin/python" ] || { say "no $venv: run scripts/setup.sh test first"; exit 1; }
  cache_job "${2:-}"
  exit
fi
case $mode in
  suite | test) ;;
  *) say "unknown mode '$mode': give suite, test [--no-cache] or cache JOB"; exit 2 ;;
esac
fill_cache=yes
[ "${2:-}" = --no-cache ] && fill_cache=no

# package -> a file or command that shows it is installed
declare -A provides=(
  [qemu-system-arm]="cmd:qemu-system-aarch64 cmd:qemu-system-arm"
  [qemu-efi-aarch64]="file:/usr/share/AAVMF/AAVMF_CODE.fd"
  [qemu-efi-arm]="file:/usr/share/AAVMF/AAVMF32_CODE.fd"
  [gdisk]="cmd:sgdisk"
  [dosfstools]="cmd:fsck.fat"
  [mtools]="cmd:mdir"
  [qemu-utils]="cmd:qemu-img"
  [fdisk]="cmd:fdisk"
  [device-tree-compiler]="cmd:dtc"
  [systemd]="cmd:systemd-repart"
  [libvirt-daemon-system]="cmd:virsh file:/usr/sbin/libvirtd"
  [u-boot-qemu]="file:/usr/lib/u-boot/qemu_arm64/u-boot.bin file:/usr/lib/u-boot/qemu_arm/u-boot.bin"
  [sbsigntool]="cmd:sbsign cmd:sbverify"
  [osslsigncode]="cmd:osslsigncode"
  [chromium]="cmd:chromium"
  [binutils]="cmd:readelf"
  [cpio]="cmd:cpio"
  [libarchive-tools]="cmd:bsdtar"
  [gcc]="cmd:gcc"
)
want=(qemu-system-arm qemu-efi-aarch64 qemu-efi-arm u-boot-qemu)
# test oracles: sgdisk, fsck.fat, mtools, qemu-img, fdisk -b 4096 (4Kn), dtc (DTB), systemd-repart (foreign images)
# and libvirt (the libvirt backend's tests boot through a real daemon: scripts/start-libvirt); sbsign signs the
# Secure Boot probes (vmconform.signing), sbverify and osslsigncode check the signatures independently; headless
# chromium opens report.html in tests/test_report_browser.py; readelf, cpio, bsdtar and gcc are the oracles of the
# asset builders' tests (ELF reader, newc writer, kernel-module dependencies)
[ "$mode" = test ] && want+=(gdisk dosfstools mtools qemu-utils fdisk device-tree-compiler systemd libvirt-daemon-system
  sbsigntool osslsigncode chromium binutils cpio libarchive-tools gcc)

have() {
  local w
  for w in ${provides[$1]}; do
    case $w in
      cmd:*) command -v "${w#cmd:}" >/dev/null 2>&1 || return 1 ;;
      file:*) [ -e "${w#file:}" ] || return 1 ;;
    esac
  done
}

python=${PYTHON:-python3}
py_ok() { "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

missing=()
for p in "${want[@]}"; do have "$p" || missing+=("$p"); done
if ! command -v "$python" >/dev/null 2>&1 || ! py_ok; then
  missing+=(python3 python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    # libvirt-daemon-system brings its client (virsh) with it; nothing else to add
  else
    say "missing: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}   (then run this again)"
    exit 1
  fi
fi
if ! py_ok; then
  say "$python is not Python >= 3.11 with the venv module; set PYTHON=/path/to/python3.11+ and run again"
  exit 1
fi

extra=""; [ "$mode" = test ] && extra="[test]"
stamp=$venv/.vmconform-installed-$mode
want_stamp=$(sha256sum "$top/pyproject.toml" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" ]; then
  say "installing vmconform$extra into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$top$extra"
  echo "$want_stamp" >"$stamp"
fi
# the asset cache (see the top): the three jobs at once, the CPU-bound build beside the two downloads
if [ "$mode" = test ] && [ "$fill_cache" = yes ]; then
  bg_logs=${VMCONFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmconform}/logs/setup
  # shellcheck source=scripts/bg.sh
  . "$top/scripts/bg.sh"
  trap bg_stop EXIT
  for job in xen releases prefetch; do bg_start "$job" "$top/scripts/setup.sh" cache "$job"; done
  failed=()
  for job in xen releases prefetch; do bg_wait "$job" || failed+=("$job"); done
  if [ ${#failed[@]} -gt 0 ]; then
    say "the asset cache is incomplete: ${failed[*]} failed (above); run scripts/setup.sh test again"
    exit 1
  fi
fi
