#pragma once
#include "prefrl/core/error.h"
#include "prefrl/prefs/store.h"  // forbidden: core knows nothing else
