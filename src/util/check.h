// SPDX-License-Identifier: Apache-2.0
// MOE_CHECK: always-on invariant checks for our own bugs (never for untrusted input).
// MOE_DCHECK: debug-only; the only check allowed in kernels and the decode loop.
#pragma once

#include <cstdio>
#include <cstdlib>

#define MOE_CHECK(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

#ifdef NDEBUG
#define MOE_DCHECK(cond) \
  do {                   \
  } while (0)
#else
#define MOE_DCHECK(cond) MOE_CHECK(cond)
#endif
