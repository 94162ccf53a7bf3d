#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates docs/routing_report.md and docs/routing_report/ (plots) from the bundled reference
# model: `scripts/analysis_report.sh [BUILD_DIR]` (default: build; needs the moestream target).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/analysis_report.py --build "${1:-build}" "${@:2}"
