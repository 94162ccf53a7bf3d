// SPDX-License-Identifier: Apache-2.0
#include "flags.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace moe::app {
namespace {

Result<int64_t> ParseInt(const std::string& v, const std::string& flag) {
  int64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) {
    return Error(StatusCode::kUsage, "--{}: '{}' is not an integer", flag, v);
  }
  return x;
}

}  // namespace

void Flags::String(const char* name, std::string* target, const char* help) {
  flags_.push_back({name, help, "STR", false, [target](const std::string& v) {
                      *target = v;
                      return Status::Ok();
                    }});
}

void Flags::Int(const char* name, int64_t* target, const char* help) {
  std::string n = name;
  flags_.push_back({name, help, "N", false, [target, n](const std::string& v) -> Status {
                      MOE_ASSIGN_OR_RETURN(*target, ParseInt(v, n));
                      return Status::Ok();
                    }});
}

void Flags::Float(const char* name, float* target, const char* help) {
  std::string n = name;
  flags_.push_back({name, help, "X", false, [target, n](const std::string& v) -> Status {
                      char* end = nullptr;
                      const float x = std::strtof(v.c_str(), &end);
                      if (v.empty() || *end != '\0' || !std::isfinite(x)) {
                        return Error(StatusCode::kUsage, "--{}: '{}' is not a finite number", n, v);
                      }
                      *target = x;
                      return Status::Ok();
                    }});
}

void Flags::Bool(const char* name, bool* target, const char* help) {
  flags_.push_back({name, help, "", true, [target](const std::string&) {
                      *target = true;
                      return Status::Ok();
                    }});
}

void Flags::Custom(const char* name, std::function<Status(const std::string&)> parse,
                   const char* help, const char* metavar) {
  flags_.push_back({name, help, metavar, false, std::move(parse)});
}

Status Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      return Status::Ok();
    }
    if (arg.rfind("--", 0) != 0 && !(arg.size() == 2 && arg[0] == '-')) {
      return Error(StatusCode::kUsage, "unexpected argument '{}'", arg);
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = std::find_if(flags_.begin(), flags_.end(), [&](const Flag& f) { return f.name == name; });
    if (it == flags_.end()) return Error(StatusCode::kUsage, "unknown flag '{}'", arg);
    if (!it->is_bool && !has_value) {
      if (i + 1 >= argc) return Error(StatusCode::kUsage, "--{} needs a value", name);
      value = argv[++i];
    }
    MOE_TRY(it->parse(value));
  }
  return Status::Ok();
}

void Flags::PrintUsage(FILE* out) const {
  std::fprintf(out, "usage: moestream %s [flags]\n  %s\n\nflags:\n", command_.c_str(),
               summary_.c_str());
  for (const Flag& f : flags_) {
    std::string left = (f.name.size() == 1 ? "-" : "--") + f.name +
                       (f.is_bool ? "" : " " + f.metavar);
    std::fprintf(out, "  %-28s %s\n", left.c_str(), f.help.c_str());
  }
}

int Flags::Fail(const Status& s) const {
  std::fprintf(stderr, "moestream %s: %s\n", command_.c_str(), s.message().c_str());
  if (s.code() == StatusCode::kUsage) {
    std::fprintf(stderr, "(see moestream %s --help)\n", command_.c_str());
  }
  return ExitCodeFor(s.code());
}

}  // namespace moe::app
