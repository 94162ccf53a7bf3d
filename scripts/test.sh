#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up (scripts/setup.sh), then runs the whole test suite: the release build's tests, then the
# unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer, then the concurrency
# tests (expert cache, loader, store reads, streaming, thread pool) under ThreadSanitizer.
# Each stage prints its wall time (docs/reliability.md records them).
set -euo pipefail
cd "$(dirname "$0")/.."

stage_start=$SECONDS
stage_done() { echo "test.sh: stage '$1' took $((SECONDS - stage_start)) s"; stage_start=$SECONDS; }

scripts/setup.sh build
ctest --test-dir build --output-on-failure -j "$(nproc)"
stage_done release

scripts/setup.sh build-asan -DMOE_SANITIZE=address,undefined
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
stage_done asan+ubsan

# ThreadSanitizer: only the binaries holding the concurrency tests are built.
tsan_tests='(ExpertCacheTest|ExpertStoreTest|StoreFixtureTest|StreamingFixtureTest|ThreadPoolTest|Loader)'
if [ ! -f build-tsan/build.ninja ]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_SANITIZE=thread
fi
cmake --build build-tsan --parallel "$(nproc)" --target util_test experts_test runtime_test
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan --output-on-failure --no-tests=error -j "$(nproc)" -R "$tsan_tests"
stage_done tsan
echo "test.sh: all suites passed"
