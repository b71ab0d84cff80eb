#!/usr/bin/env bash
# Build libosdp from its published source with the patches carried here, and install it into
# the given venv. Usage: drivers/libosdp/build.sh <venv-python> [<wheel-dir>]
#
# The source is the PyPI sdist of LIBOSDP_VERSION, checked against its sha256 before use; the
# patches in this folder are applied in name order; the wheel gets the local version label
# LOCAL_LABEL (libosdp 3.2.9+cg1), so `pip show libosdp` and the gateway's self-test report
# say which build runs. The wheel is left in <wheel-dir> (default: build/libosdp) for release
# bundles (docs/updates.md). See drivers/libosdp/README.md for what each patch does and why.
set -euo pipefail

LIBOSDP_VERSION=3.2.9
LIBOSDP_SHA256=61b75ff76175ea9dba839f4682ac6870651964491678766d2857d6a671f1deab
LOCAL_LABEL=cg1

py=${1:?usage: build.sh <venv-python> [<wheel-dir>]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-build/libosdp}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The Debian tools the build needs, installed when missing (as `make bootstrap` does).
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v patch >/dev/null 2>&1 || missing+=(patch)
"$py" -c "import os, sysconfig; os.stat(sysconfig.get_paths()['include'] + '/Python.h')" \
  2>/dev/null || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages to build libosdp: ${missing[*]}"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$py" -m pip download --quiet --no-deps --no-binary :all: -d "$work" "libosdp==$LIBOSDP_VERSION"
sdist="$work/libosdp-$LIBOSDP_VERSION.tar.gz"
echo "$LIBOSDP_SHA256  $sdist" | sha256sum --check --quiet -
tar -xzf "$sdist" -C "$work"
src="$work/libosdp-$LIBOSDP_VERSION"
for p in "$here"/*.patch; do
  patch --quiet --forward --strip=1 --directory="$src" --input="$p"
done
sed -i "s/^project_version = \"$LIBOSDP_VERSION\"$/project_version = \"$LIBOSDP_VERSION+$LOCAL_LABEL\"/" \
  "$src/setup.py"
grep -q "^project_version = \"$LIBOSDP_VERSION+$LOCAL_LABEL\"$" "$src/setup.py"
rm -f "$out"/libosdp-*.whl
# setuptools' deprecation warnings are kept out of sight unless the build fails.
if ! "$py" -m pip wheel --quiet --no-deps -w "$out" "$src" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "libosdp: the build failed (log above)" >&2
  exit 1
fi
wheel=("$out/libosdp-$LIBOSDP_VERSION+$LOCAL_LABEL"-*.whl)
"$py" -m pip install --quiet --no-deps --force-reinstall "${wheel[0]}"
"$py" -c "import importlib.metadata as m; v = m.version('libosdp'); assert v == '$LIBOSDP_VERSION+$LOCAL_LABEL', v; print('libosdp', v)"
