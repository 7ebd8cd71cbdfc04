#pragma once
#include "prefrl/core/error.h"
