#include "prefrl/core/segment.h"

#include <cstring>

namespace prefrl {

const char* choice_name(Choice c) {
  switch (c) {
    case Choice::kLeft: return "left";
    case Choice::kRight: return "right";
    case Choice::kEqual: return "equal";
    case Choice::kSkip: return "skip";
  }
  return "?";
}

bool parse_choice(const char* s, Choice* out) {
  if (!std::strcmp(s, "left")) { *out = Choice::kLeft; return true; }
  if (!std::strcmp(s, "right")) { *out = Choice::kRight; return true; }
  if (!std::strcmp(s, "equal")) { *out = Choice::kEqual; return true; }
  if (!std::strcmp(s, "skip")) { *out = Choice::kSkip; return true; }
  return false;
}

}  // namespace prefrl
