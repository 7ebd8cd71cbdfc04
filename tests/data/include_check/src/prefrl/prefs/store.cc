#include "prefrl/prefs/store.h"

#include <sqlite3.h>  // allowed: the store wraps the engine

#include "prefrl/core/util.h"
