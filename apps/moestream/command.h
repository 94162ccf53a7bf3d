// SPDX-License-Identifier: Apache-2.0
// Subcommand registry: each cmd_<name>.cc registers itself with MOE_COMMAND, so main.cc stays a
// dispatcher and commands can be added without touching a shared table.
#pragma once

#include <string>
#include <vector>

namespace moe::app {

using CommandFn = int (*)(int argc, char** argv);  // argv[0] is the subcommand name

struct Command {
  const char* name;
  const char* help;  // one line
  CommandFn fn;
};

std::vector<Command>& Commands();

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* help, CommandFn fn) {
    Commands().push_back({name, help, fn});
  }
};

}  // namespace moe::app

#define MOE_COMMAND(name, help, fn) \
  static ::moe::app::CommandRegistrar moe_command_registrar_##fn(name, help, fn)
