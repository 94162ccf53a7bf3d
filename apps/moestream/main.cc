// SPDX-License-Identifier: Apache-2.0
// moestream: run large Mixture-of-Experts models with experts streamed from disk.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "command.h"

namespace moe::app {

std::vector<Command>& Commands() {
  static std::vector<Command> commands;
  return commands;
}

namespace {

void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: moestream <command> [options]   (moestream <command> --help)\n\ncommands:\n");
  auto cmds = Commands();
  std::sort(cmds.begin(), cmds.end(),
            [](const Command& a, const Command& b) { return std::strcmp(a.name, b.name) < 0; });
  for (const Command& c : cmds) std::fprintf(out, "  %-12s %s\n", c.name, c.help);
}

}  // namespace
}  // namespace moe::app

int main(int argc, char** argv) {
  using namespace moe::app;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    PrintUsage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("moestream 0.1.0\n");
    return 0;
  }
  for (const Command& c : Commands()) {
    if (!std::strcmp(argv[1], c.name)) {
      try {
        return c.fn(argc - 1, argv + 1);
      } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "moestream %s: out of memory\n", c.name);
        return 5;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moestream %s: internal error: %s\n", c.name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "moestream: unknown command '%s'\n", argv[1]);
  PrintUsage(stderr);
  return 2;
}
