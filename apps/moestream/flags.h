// SPDX-License-Identifier: Apache-2.0
// A small flag parser for subcommands: each flag is declared once with its help text and a
// target; bad flags give a one-line error plus usage and exit code 2.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/cli_parse.h"
#include "util/status.h"

namespace moe::app {

class Flags {
 public:
  Flags(std::string command, std::string summary)
      : command_(std::move(command)), summary_(std::move(summary)) {}

  void String(const char* name, std::string* target, const char* help);
  void Int(const char* name, int64_t* target, const char* help);
  void Float(const char* name, float* target, const char* help);
  void Bool(const char* name, bool* target, const char* help);  // presence sets true
  // A flag whose value is parsed by `parse` (returns a Status naming the rule broken).
  void Custom(const char* name, std::function<Status(const std::string&)> parse, const char* help,
              const char* metavar = "VALUE");

  // Parses argv[1..argc); returns kUsage naming the flag on any problem, or `help` requests.
  Status Parse(int argc, char** argv);
  bool help_requested() const { return help_; }
  void PrintUsage(FILE* out) const;
  // Prints "moestream <cmd>: <message>" (+ usage for kUsage) and returns the exit code.
  int Fail(const Status& s) const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string metavar;
    bool is_bool = false;
    std::function<Status(const std::string&)> parse;
  };
  std::string command_, summary_;
  std::vector<Flag> flags_;
  bool help_ = false;
};

}  // namespace moe::app
