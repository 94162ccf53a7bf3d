// SPDX-License-Identifier: Apache-2.0
// Placeholder so the library target exists until its first real source lands.
namespace moe {}
