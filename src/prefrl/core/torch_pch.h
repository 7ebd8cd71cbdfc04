// Precompiled header for every translation unit that uses LibTorch (keeps builds short).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <vector>
#include <string>
#include <memory>
