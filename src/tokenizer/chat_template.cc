// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/chat_template.h"

#include <string_view>

namespace moe {
namespace {

// Python's str.lstrip('\n') / rstrip('\n') / strip('\n').
std::string_view LstripNl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view RstripNl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}
std::string_view StripNl(std::string_view s) { return LstripNl(RstripNl(s)); }

// s.split(sep)[0] and s.split(sep)[-1].
std::string_view BeforeFirst(std::string_view s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string_view::npos ? s : s.substr(0, p);
}
std::string_view AfterLast(std::string_view s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}

bool IsToolResponse(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

// Index of the last user message that is not a wrapped tool response, scanning backwards
// while only tool-like user turns have been seen (the template's ns.last_query_index).
size_t LastQueryIndex(const std::vector<ChatMessage>& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user" && !IsToolResponse(messages[i].content)) return i;
  }
  return messages.empty() ? 0 : messages.size() - 1;
}

void RenderAssistant(const ChatMessage& m, bool after_last_query, bool is_last, std::string* out) {
  std::string_view content = m.content;
  std::string_view reasoning;
  if (m.reasoning_content.has_value()) {
    reasoning = *m.reasoning_content;
  } else if (content.find("</think>") != std::string_view::npos) {
    content = LstripNl(AfterLast(m.content, "</think>"));
    reasoning = LstripNl(AfterLast(RstripNl(BeforeFirst(m.content, "</think>")), "<think>"));
  }
  *out += "<|im_start|>";
  *out += m.role;
  *out += "\n";
  if (after_last_query && (is_last || !reasoning.empty())) {
    *out += "<think>\n";
    *out += StripNl(reasoning);
    *out += "\n</think>\n\n";
    *out += LstripNl(content);
  } else {
    *out += content;
  }
  *out += "<|im_end|>\n";
}

}  // namespace

std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages, const ChatOptions& options) {
  std::string out;
  const size_t n = messages.size();
  if (n > 0 && messages[0].role == "system") {
    out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
  }
  const size_t last_query = LastQueryIndex(messages);
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      RenderAssistant(m, i > last_query, i + 1 == n, &out);
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i + 1 == n || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!options.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace moe
