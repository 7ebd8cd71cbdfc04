#include "prefrl/server/page.h"
#include "prefrl/prefs/store.h"
#include "prefrl/core/util.h"
  #  include "prefrl/app/cli.h"
#include <sqlite3.h>
// #include "prefrl/app/commented.h" is no include
