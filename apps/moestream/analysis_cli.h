// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the analysis subcommands (trace, experts, perplexity, cache-sim).
#pragma once

#include <string>
#include <vector>

#include "model_flags.h"
#include "util/status.h"

namespace moe::app {

// Moves a leading positional argument (argv[1] not starting with '-') into *positional and
// removes it from argv; returns the new argc.
int TakePositional(int argc, char** argv, std::string* positional);

// Writes `text` to `path`, or to stdout when path is empty or "-".
Status WriteOutput(const std::string& path, const std::string& text);

// A JSON string literal of `s` (quotes, backslashes and control bytes escaped).
std::string JsonQuote(const std::string& s);

// "a,b,c" → {"a","b","c"} (empty items kept out).
std::vector<std::string> SplitCommaList(const std::string& s);

}  // namespace moe::app
