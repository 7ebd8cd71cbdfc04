// The labeling page's static files (web/), embedded in the binary at build time by
// cmake/embed_web.cmake: the server needs no files beside it and serves only these paths.
#pragma once
#include <cstddef>

namespace prefrl {

struct WebAsset {
  const char* path;             // URL path, e.g. "/index.html"
  const char* mime;             // Content-Type
  const unsigned char* data;
  size_t size;
};

extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace prefrl
