// The run dashboard of the labeling server: the reports of tracking/report.h, served live.
//   GET /runs                       index of runs and sweeps under the runs root (HTML)
//   GET /runs/NAME[/SEED]           a run's or sweep's report (HTML; refreshes while running)
//   GET /api/runs                   the same index as JSON
//   GET /api/runs/NAME[/SEED]       one run (summary, meta, config with secrets hidden, health
//                                   warnings, plotted series) or sweep (record, figures) as JSON
// NAME and SEED are single path components of [A-Za-z0-9_.-] not starting with '.', so no
// request reaches outside the root. The server's token rules apply to these routes too.
#pragma once
#include <string>

namespace httplib { class Server; }

namespace prefrl {

// Registers the routes above on `http` (before any catch-all route). An empty root serves 404
// ("this server has no runs root").
void add_runs_routes(httplib::Server& http, const std::string& root);

}  // namespace prefrl
