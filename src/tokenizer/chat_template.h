// SPDX-License-Identifier: Apache-2.0
// Qwen3 ChatML rendering, hard-coded to match the Jinja chat_template shipped in Qwen3's
// tokenizer_config.json (hybrid thinking models; spec hf-moe-checkpoints.md §6.6) for
// conversations without `tools` / `tool_calls`. Verified against transformers'
// apply_chat_template (tests/data/tokenizer/hf_chat.json) and jinja2 (jinja2_chat.json).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace moe {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"; others are skipped, as Jinja does
  std::string content;
  // Assistant reasoning; when absent, a "<think>...</think>" prefix of `content` is split off.
  std::optional<std::string> reasoning_content;
};

struct ChatOptions {
  bool add_generation_prompt = true;  // end with "<|im_start|>assistant\n"
  // false appends "<think>\n\n</think>\n\n" to the generation prompt (an empty thought), as the
  // template does for enable_thinking=False; true (the template's default) lets the model think.
  bool enable_thinking = true;
};

// Renders `messages` exactly as the Qwen3 template: a leading system message first; reasoning
// kept (as <think>\n...\n</think>\n\n) only for assistant turns after the last real user
// query; consecutive tool messages share one user turn. Pure function; thread-safe.
std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages, const ChatOptions& options);

// Stop strings of the ChatML format.
inline constexpr const char* kQwenImEnd = "<|im_end|>";
inline constexpr const char* kQwenEndOfText = "<|endoftext|>";

}  // namespace moe
