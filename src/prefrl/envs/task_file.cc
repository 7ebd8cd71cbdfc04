// MuJoCo task files: the loader (TOML, toml++), the named quantities, the expressions
// (muParser) and the environment they describe.
#include "prefrl/envs/task_file.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include <muParser.h>
#include <toml++/toml.h>

#include "prefrl/core/config.h"
#include "prefrl/core/error.h"
#include "prefrl/envs/action_util.h"
#include "prefrl/envs/external_env.h"
#include "prefrl/envs/mjcf_models.h"
#include "prefrl/envs/mujoco_env.h"

namespace prefrl {
namespace {

namespace fs = std::filesystem;

// ---- Messages naming the file, line and column ---------------------------------------------
[[noreturn]] void fail_at(const std::string& file, const toml::source_region& where, const std::string& msg) {
  if (where.begin.line > 0)
    throw UsageError(file + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) + ": " + msg);
  throw UsageError(file + ": " + msg);
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& names) {
  const std::vector<std::string> near = nearest_names(word, names);
  if (!near.empty()) return "; did you mean " + join(near, ", ") + "?";
  if (names.size() <= 12) return "; the valid names are: " + join(names, ", ");
  return "";
}

// A name as an expression identifier: letters, digits and '_' (others become '_'), never
// starting with a digit.
std::string identifier(const std::string& name) {
  std::string id = name;
  for (char& c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) c = '_';
  if (!id.empty() && id[0] >= '0' && id[0] <= '9') id = "_" + id;
  return id;
}

std::vector<std::string> object_names(const mjModel* m, mjtObj type, int count) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    const char* n = mj_id2name(m, type, i);
    out.push_back(n ? n : "");
  }
  return out;
}

// ---- Named quantities ---------------------------------------------------------------------
// One scalar read from mjData after a step (and kept from before it as prev_<name>).
struct Quantity {
  std::string name;
  enum class From { kQpos, kQvel, kXpos, kSensor, kSiteXpos } from;
  int address;
};

std::vector<Quantity> model_quantities(const mjModel* m, const std::string& file) {
  std::vector<Quantity> q;
  for (int j = 0; j < m->njnt; ++j) {
    const char* n = mj_id2name(m, mjOBJ_JOINT, j);
    if (!n || !*n) continue;
    const int type = m->jnt_type[j];
    if (type == mjJNT_HINGE || type == mjJNT_SLIDE) {
      q.push_back({identifier(n), Quantity::From::kQpos, m->jnt_qposadr[j]});
      q.push_back({identifier(n) + "_vel", Quantity::From::kQvel, m->jnt_dofadr[j]});
    }
  }
  // Bodies: <body>_pos_x ... always, and <body>_x ... where no joint has that name (Gymnasium's
  // reacher has a body `target` and joints `target_x`, `target_y`).
  std::vector<Quantity> bodies;
  for (int b = 1; b < m->nbody; ++b) {  // body 0 is the world
    const char* n = mj_id2name(m, mjOBJ_BODY, b);
    if (!n || !*n) continue;
    for (int k = 0; k < 3; ++k) {
      const std::string shorter = identifier(n) + "_" + "xyz"[k];
      if (std::none_of(q.begin(), q.end(), [&](const Quantity& x) { return x.name == shorter; }))
        bodies.push_back({shorter, Quantity::From::kXpos, 3 * b + k});
      bodies.push_back({identifier(n) + "_pos_" + "xyz"[k], Quantity::From::kXpos, 3 * b + k});
    }
  }
  q.insert(q.end(), bodies.begin(), bodies.end());
  for (int s = 0; s < m->nsite; ++s) {
    const char* n = mj_id2name(m, mjOBJ_SITE, s);
    if (!n || !*n) continue;
    for (int k = 0; k < 3; ++k) q.push_back({identifier(n) + "_" + "xyz"[k], Quantity::From::kSiteXpos, 3 * s + k});
  }
  for (int s = 0; s < m->nsensor; ++s) {
    const char* n = mj_id2name(m, mjOBJ_SENSOR, s);
    if (!n || !*n) continue;
    const int dim = m->sensor_dim[s], adr = m->sensor_adr[s];
    if (dim == 1) q.push_back({identifier(n), Quantity::From::kSensor, adr});
    else for (int k = 0; k < dim; ++k) q.push_back({identifier(n) + "_" + std::to_string(k), Quantity::From::kSensor, adr + k});
  }
  std::map<std::string, int> seen;
  for (const Quantity& x : q)
    if (++seen[x.name] == 2)
      throw UsageError(file + ": two quantities of the model are both named '" + x.name +
                       "' (joints, bodies, sites and sensors share one namespace in expressions); rename one in the model");
  return q;
}

double read(const mjData* d, const Quantity& q) {
  switch (q.from) {
    case Quantity::From::kQpos: return d->qpos[q.address];
    case Quantity::From::kQvel: return d->qvel[q.address];
    case Quantity::From::kXpos: return d->xpos[q.address];
    case Quantity::From::kSensor: return d->sensordata[q.address];
    case Quantity::From::kSiteXpos: return d->site_xpos[q.address];
  }
  return 0.0;
}

// Every variable of the expressions, in one array: the model's quantities after the step, the
// same before it (prev_), the action, action_sq, dt and t.
struct Variables {
  std::vector<Quantity> quantities;
  int actions = 0;
  std::vector<std::string> names;  // in the order of values
  std::vector<double> values;
  size_t prev_at() const { return quantities.size(); }
  size_t action_at() const { return 2 * quantities.size(); }
  size_t action_sq_at() const { return action_at() + actions; }
  size_t dt_at() const { return action_sq_at() + 1; }
  size_t t_at() const { return dt_at() + 1; }

  Variables(std::vector<Quantity> q, int num_actions) : quantities(std::move(q)), actions(num_actions) {
    for (const Quantity& x : quantities) names.push_back(x.name);
    for (const Quantity& x : quantities) names.push_back("prev_" + x.name);
    for (int k = 0; k < actions; ++k) names.push_back("a_" + std::to_string(k));
    names.push_back("action_sq");
    names.push_back("dt");
    names.push_back("t");
    values.assign(names.size(), 0.0);
  }
  void bind(mu::Parser& p) {
    for (size_t k = 0; k < names.size(); ++k) p.DefineVar(names[k], &values[k]);
  }
};

// A parser of `expr` over `vars`; throws UsageError naming the file, the field, the column and,
// for an unknown name, the nearest known ones.
std::unique_ptr<mu::Parser> compile_expression(const std::string& expr, Variables& vars, const std::string& file,
                                               const std::string& field) {
  auto p = std::make_unique<mu::Parser>();
  vars.bind(*p);
  try {
    p->SetExpr(expr);
    (void)p->Eval();
  } catch (const mu::Parser::exception_type& e) {
    std::string msg = file + ": " + field + " = \"" + expr + "\": " + e.GetMsg();
    const std::string token = e.GetToken();
    if (e.GetCode() == mu::ecUNASSIGNABLE_TOKEN && !token.empty()) {
      msg += " ('" + token + "' is not a quantity of the model" + did_you_mean(token, vars.names) + ")";
    }
    msg += " (column " + std::to_string(e.GetPos() + 1) + ")";
    throw UsageError(msg);
  }
  return p;
}

// ---- The loader ------------------------------------------------------------------------------

struct Loader {
  std::string file;
  const toml::table* root = nullptr;

  void check_keys(const toml::table& t, const std::vector<std::string>& allowed, const std::string& where) const {
    for (const auto& [k, v] : t) {
      const std::string key(k.str());
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail_at(file, k.source(), "unknown key '" + key + "' in " + where + did_you_mean(key, allowed));
    }
  }
  template <class T>
  std::optional<T> get(const toml::table& t, const char* key, const std::string& where) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (auto v = n->value<T>()) return *v;
    fail_at(file, n->source(), where + "." + key + " has the wrong type");
  }
  const toml::table* table(const toml::table& t, const char* key) const {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) fail_at(file, n->source(), std::string("'") + key + "' must be a table");
    return n->as_table();
  }
};

// Indices of the named (or numbered) objects of `names`, from "all" or an array of names and
// indices; `skip` leading ones dropped from "all".
std::vector<int> select(const Loader& L, const toml::node& sel, const std::vector<std::string>& names,
                        const std::string& what, const std::string& field) {
  std::vector<int> out;
  if (auto s = sel.value<std::string>()) {
    if (*s != "all") {
      const int i = static_cast<int>(std::find(names.begin(), names.end(), *s) - names.begin());
      if (i == static_cast<int>(names.size()))
        fail_at(L.file, sel.source(), field + ": no " + what + " named '" + *s + "'" + did_you_mean(*s, names));
      return {i};
    }
    for (int i = 0; i < static_cast<int>(names.size()); ++i) out.push_back(i);
    return out;
  }
  const toml::array* arr = sel.as_array();
  if (!arr) fail_at(L.file, sel.source(), field + " must be \"all\", a name, or an array of names and indices");
  for (const toml::node& e : *arr) {
    if (auto name = e.value<std::string>()) {
      const int i = static_cast<int>(std::find(names.begin(), names.end(), *name) - names.begin());
      if (i == static_cast<int>(names.size()))
        fail_at(L.file, e.source(), field + ": no " + what + " named '" + *name + "'" + did_you_mean(*name, names));
      out.push_back(i);
    } else if (auto idx = e.value<int64_t>()) {
      if (*idx < 0 || *idx >= static_cast<int64_t>(names.size()))
        fail_at(L.file, e.source(), field + ": " + what + " index " + std::to_string(*idx) + " is outside [0, " +
                                        std::to_string(names.size() - 1) + "]");
      out.push_back(static_cast<int>(*idx));
    } else {
      fail_at(L.file, e.source(), field + ": expected a " + what + " name or index");
    }
  }
  return out;
}

// [episode] reset_disc = { joints = [a, b], radius = r, still = true }: after the qpos noise, two
// slide joints are placed at a point uniform in the disc of radius r (rejection sampling, as
// Gymnasium's reacher places its target); `still`: their velocities are zeroed after the qvel
// noise.
void read_reset_disc(const Loader& L, const toml::table& t, const mjModel* m, TaskSpec* spec) {
  const std::string where = "episode.reset_disc";
  L.check_keys(t, {"joints", "radius", "still"}, where);
  const toml::node* j = t.get("joints");
  if (!j) fail_at(L.file, t.source(), where + " needs 'joints', two slide joints");
  const std::vector<int> joints = select(L, *j, object_names(m, mjOBJ_JOINT, m->njnt), "joint", where + ".joints");
  if (joints.size() != 2) fail_at(L.file, j->source(), where + ".joints must name two joints");
  for (int id : joints)
    if (m->jnt_type[id] != mjJNT_SLIDE && m->jnt_type[id] != mjJNT_HINGE)
      fail_at(L.file, j->source(), where + ".joints must be slide or hinge joints (one value each)");
  const double radius = L.get<double>(t, "radius", where).value_or(0.0);
  if (!(radius > 0)) fail_at(L.file, t.source(), where + ".radius must be > 0");
  TaskSpec::ResetDisc d;
  d.qpos = {m->jnt_qposadr[joints[0]], m->jnt_qposadr[joints[1]]};
  d.dof = {m->jnt_dofadr[joints[0]], m->jnt_dofadr[joints[1]]};
  d.radius = radius;
  d.still = L.get<bool>(t, "still", where).value_or(false);
  spec->reset_disc = d;
}

TaskObsPiece observation_piece(const Loader& L, const toml::table& t, const mjModel* m, size_t k) {
  const std::string where = "observation[" + std::to_string(k) + "]";
  L.check_keys(t, {"qpos", "qvel", "qfrc_constraint", "body_pos", "body_quat", "body_vel", "contact_force", "sensor",
                   "expr", "clip", "skip"},
               where);
  TaskObsPiece p;
  int sources = 0;
  const int skip = static_cast<int>(L.get<int64_t>(t, "skip", where).value_or(0));
  if (auto c = L.get<double>(t, "clip", where)) {
    if (!(*c > 0)) fail_at(L.file, t.get("clip")->source(), where + ".clip must be > 0");
    p.clip = *c;
  }
  const std::vector<std::string> joints = object_names(m, mjOBJ_JOINT, m->njnt);
  // qpos or qvel: "all" (after `skip` entries) or joints by name or index, each its entries.
  auto joint_piece = [&](const char* key, TaskObsPiece::Source source, bool velocities) {
    const toml::node* n = t.get(key);
    if (!n) return;
    ++sources;
    p.source = source;
    p.what = key;
    const int count = velocities ? m->nv : m->nq;
    if (n->value<std::string>() == std::optional<std::string>("all")) {
      for (int i = skip; i < count; ++i) p.addresses.push_back(i);
      return;
    }
    for (int j : select(L, *n, joints, "joint", where + "." + key)) {
      const int type = m->jnt_type[j];
      const int size = type == mjJNT_FREE ? (velocities ? 6 : 7) : type == mjJNT_BALL ? (velocities ? 3 : 4) : 1;
      const int first = velocities ? m->jnt_dofadr[j] : m->jnt_qposadr[j];
      for (int i = 0; i < size; ++i) p.addresses.push_back(first + i);
    }
  };
  joint_piece("qpos", TaskObsPiece::Source::kQpos, false);
  joint_piece("qvel", TaskObsPiece::Source::kQvel, true);
  joint_piece("qfrc_constraint", TaskObsPiece::Source::kQfrcConstraint, true);
  if (const toml::node* n = t.get("expr")) {  // expressions of the state after the step
    ++sources;
    p.source = TaskObsPiece::Source::kExpression;
    p.what = "expr";
    const toml::array* list = n->as_array();
    if (!list) fail_at(L.file, n->source(), where + ".expr must be a list of expressions");
    Variables vars(model_quantities(m, L.file), 0);
    for (const toml::node& e : *list) {
      const auto text = e.value<std::string>();
      if (!text) fail_at(L.file, e.source(), where + ".expr: expected an expression (a string)");
      const std::string field = where + ".expr[" + std::to_string(p.expressions.size()) + "]";
      const std::unique_ptr<mu::Parser> parser = compile_expression(*text, vars, L.file, field);
      for (const auto& [name, ptr] : parser->GetUsedVar())
        if (name.rfind("prev_", 0) == 0 || name.rfind("a_", 0) == 0 || name == "action_sq" || name == "t")
          fail_at(L.file, e.source(), field + " = \"" + *text + "\" names '" + name +
                                         "': an observation is of the state alone (no prev_, actions or t)");
      p.addresses.push_back(static_cast<int>(p.expressions.size()));
      p.expressions.push_back(*text);
    }
  }
  // Bodies' positions (3 each), orientations (quaternions, 4), com-based velocities (cvel:
  // angular then linear, 6) and external contact forces (cfrc_ext: torque then force, 6).
  auto body_piece = [&](const char* key, TaskObsPiece::Source source, int width) {
    const toml::node* n = t.get(key);
    if (!n) return;
    ++sources;
    p.source = source;
    for (int b : select(L, *n, object_names(m, mjOBJ_BODY, m->nbody), "body", where + "." + key))
      for (int i = 0; i < width; ++i) p.addresses.push_back(width * b + i);
    p.what = key;
  };
  body_piece("body_pos", TaskObsPiece::Source::kBodyPos, 3);
  body_piece("body_quat", TaskObsPiece::Source::kBodyQuat, 4);
  body_piece("body_vel", TaskObsPiece::Source::kBodyVel, 6);
  body_piece("contact_force", TaskObsPiece::Source::kContactForce, 6);
  if (const toml::node* n = t.get("sensor")) {
    ++sources;
    p.source = TaskObsPiece::Source::kSensor;
    for (int s : select(L, *n, object_names(m, mjOBJ_SENSOR, m->nsensor), "sensor", where + ".sensor"))
      for (int i = 0; i < m->sensor_dim[s]; ++i) p.addresses.push_back(m->sensor_adr[s] + i);
    p.what = "sensor";
  }
  if (sources != 1)
    fail_at(L.file, t.source(), where + " must have exactly one of qpos, qvel, qfrc_constraint, body_pos, body_quat, "
                                        "body_vel, contact_force, sensor, expr");
  if (p.addresses.empty()) fail_at(L.file, t.source(), where + " selects nothing");
  return p;
}

// A task file parsed; a missing file or a TOML error is a UsageError naming it.
toml::table parse_task_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (!fs::exists(path)) throw UsageError(path + ": no such task file");
    fail_at(path, e.source(), std::string(e.description()));
  }
}

}  // namespace

std::optional<ExternalEnvOptions> external_task(const std::string& path) {
  const toml::table doc = parse_task_file(path);
  if (!doc.contains("external")) return std::nullopt;
  Loader L{path, &doc};
  L.check_keys(doc, {"external"},
               "a task file of an external environment (its worker's SPEC gives the name, spaces and time limit)");
  const toml::table* x = L.table(doc, "external");
  L.check_keys(*x, {"cmd", "num_workers", "step_timeout_s"}, "[external]");
  ExternalEnvOptions o;
  const auto cmd = L.get<std::string>(*x, "cmd", "external");
  if (!cmd || cmd->empty())
    throw UsageError(path + ": [external] needs 'cmd', the worker command (run in the task file's directory)");
  o.cmd = *cmd;
  o.dir = fs::absolute(path).parent_path().lexically_normal().string();
  o.num_workers = static_cast<int>(L.get<int64_t>(*x, "num_workers", "external").value_or(1));
  if (o.num_workers < 1 || o.num_workers > 256)
    fail_at(path, x->get("num_workers")->source(), "external.num_workers must be in 1..256");
  if (const toml::node* t = x->get("step_timeout_s")) {
    const auto v = t->value<double>();
    if (!v || !(*v > 0)) fail_at(path, t->source(), "external.step_timeout_s must be a number > 0");
    o.step_timeout_s = *v;
  }
  return o;
}

namespace {

// A task's model: a file, or (a built-in task's) one of the embedded models.
constexpr std::string_view kEmbeddedModel = "embedded:";
const mjModel* task_model(const std::string& model) {
  if (model.rfind(kEmbeddedModel, 0) == 0) return mujoco_model(model.substr(kEmbeddedModel.size()));
  return mujoco_model_file(model);
}

// The task of a parsed task file `path`; `embedded`: a built-in task's, whose model is the
// embedded one of its file name.
TaskSpec load_task_doc(const std::string& path, const toml::table& doc, bool embedded) {
  TaskSpec spec;
  spec.file = path;
  Loader L{path, &doc};
  L.check_keys(doc, {"name", "reference", "model", "episode", "observation", "action", "reward", "teacher", "metrics",
                     "camera"},
               "the task file");
  spec.name = L.get<std::string>(doc, "name", "").value_or(fs::path(path).stem().string());
  spec.reference = L.get<std::string>(doc, "reference", "").value_or("task file " + fs::path(path).filename().string());
  const auto model = L.get<std::string>(doc, "model", "");
  if (!model) throw UsageError(path + ": 'model' (the MJCF file, relative to the task file) is missing");
  spec.model = embedded ? std::string(kEmbeddedModel) + fs::path(*model).stem().string()
                        : (fs::absolute(path).parent_path() / *model).lexically_normal().string();
  const mjModel* m = nullptr;
  try {
    m = task_model(spec.model);
  } catch (const UsageError& e) {
    fail_at(path, doc.get("model")->source(), e.what());
  }

  if (const toml::table* ep = L.table(doc, "episode")) {
    L.check_keys(*ep, {"frame_skip", "time_limit", "terminate", "reset_noise", "reset_disc"}, "[episode]");
    if (const toml::table* disc = L.table(*ep, "reset_disc")) read_reset_disc(L, *disc, m, &spec);
    spec.frame_skip = static_cast<int>(L.get<int64_t>(*ep, "frame_skip", "episode").value_or(1));
    if (spec.frame_skip < 1) fail_at(path, ep->get("frame_skip")->source(), "episode.frame_skip must be >= 1");
    spec.time_limit = static_cast<int>(L.get<int64_t>(*ep, "time_limit", "episode").value_or(1000));
    if (spec.time_limit < 1) fail_at(path, ep->get("time_limit")->source(), "episode.time_limit must be >= 1");
    spec.terminate = L.get<std::string>(*ep, "terminate", "episode").value_or("");
    if (const toml::table* rn = L.table(*ep, "reset_noise")) {
      L.check_keys(*rn, {"qpos", "qvel", "distribution", "qpos_distribution", "qvel_distribution"},
                   "episode.reset_noise");
      spec.qpos_noise = L.get<double>(*rn, "qpos", "episode.reset_noise").value_or(0.0);
      spec.qvel_noise = L.get<double>(*rn, "qvel", "episode.reset_noise").value_or(0.0);
      const std::string both = L.get<std::string>(*rn, "distribution", "episode.reset_noise").value_or("uniform");
      spec.qpos_distribution = L.get<std::string>(*rn, "qpos_distribution", "episode.reset_noise").value_or(both);
      spec.qvel_distribution = L.get<std::string>(*rn, "qvel_distribution", "episode.reset_noise").value_or(both);
      for (const char* key : {"distribution", "qpos_distribution", "qvel_distribution"}) {
        const toml::node* n = rn->get(key);
        const std::string v = n ? n->value<std::string>().value_or("") : "uniform";
        if (v != "uniform" && v != "normal")
          fail_at(path, n->source(), std::string("episode.reset_noise.") + key + " is '" + v +
                                         "'; expected uniform or normal");
      }
      if (spec.qpos_noise < 0 || spec.qvel_noise < 0) fail_at(path, rn->source(), "reset noise scales must be >= 0");
    }
  }

  const toml::node* obs = doc.get("observation");
  const toml::array* pieces = obs ? obs->as_array() : nullptr;
  if (!pieces || pieces->empty())
    throw UsageError(path + ": no observation: add [[observation]] tables (qpos, qvel, body_pos or sensor)");
  for (size_t k = 0; k < pieces->size(); ++k) {
    const toml::table* t = (*pieces)[k].as_table();
    if (!t) fail_at(path, (*pieces)[k].source(), "each observation piece must be a table ([[observation]])");
    spec.observation.push_back(observation_piece(L, *t, m, k));
  }

  const std::vector<std::string> actuators = object_names(m, mjOBJ_ACTUATOR, m->nu);
  const toml::table* act = L.table(doc, "action");
  if (act) L.check_keys(*act, {"actuators"}, "[action]");
  const toml::node* sel = act ? act->get("actuators") : nullptr;
  if (sel) {
    spec.actuators = select(L, *sel, actuators, "actuator", "action.actuators");
  } else {
    for (int j = 0; j < m->nu; ++j) spec.actuators.push_back(j);
  }
  if (spec.actuators.empty()) throw UsageError(path + ": the model has no actuators to act with");
  for (int j : spec.actuators) {
    if (!m->actuator_ctrllimited[j])
      throw UsageError(path + ": actuator '" + actuators[j] + "' has no control range; give it ctrllimited=\"true\" "
                       "and a ctrlrange in the model (the policy's actions are bounded by them)");
  }

  const toml::table* rw = L.table(doc, "reward");
  if (rw) L.check_keys(*rw, {"expression"}, "[reward]");
  spec.reward = rw ? L.get<std::string>(*rw, "expression", "reward").value_or("") : "";
  if (rw && spec.reward.empty())
    fail_at(path, rw->source(), "[reward] has no expression (leave [reward] out for a task without a true reward)");
  if (const toml::table* te = L.table(doc, "teacher")) {
    L.check_keys(*te, {"score"}, "[teacher]");
    spec.teacher_score = L.get<std::string>(*te, "score", "teacher").value_or("");
    if (spec.teacher_score.empty()) fail_at(path, te->source(), "[teacher] has no score expression");
  }
  if (const toml::table* mt = L.table(doc, "metrics")) {
    for (const auto& [k, v] : *mt) {
      const std::string key(k.str());
      if (key.empty() || identifier(key) != key || !std::all_of(key.begin(), key.end(), [](char c) { return c < 'A' || c > 'Z'; }))
        fail_at(path, k.source(), "metric name '" + key + "': use lower-case letters, digits and '_'");
      const auto expr = v.value<std::string>();
      if (!expr || expr->empty()) fail_at(path, v.source(), "metrics." + key + " must be an expression (a string)");
      spec.metrics.emplace_back(key, *expr);
    }
  }

  if (const toml::table* cam = L.table(doc, "camera")) {
    L.check_keys(*cam, {"fixed", "distance", "azimuth", "elevation", "lookat"}, "[camera]");
    spec.camera.fixed = L.get<std::string>(*cam, "fixed", "camera").value_or("");
    spec.camera.distance = L.get<double>(*cam, "distance", "camera").value_or(spec.camera.distance);
    spec.camera.azimuth = L.get<double>(*cam, "azimuth", "camera").value_or(spec.camera.azimuth);
    spec.camera.elevation = L.get<double>(*cam, "elevation", "camera").value_or(spec.camera.elevation);
    if (const toml::node* la = cam->get("lookat")) {
      const toml::array* a = la->as_array();
      if (!a || a->size() != 3) fail_at(path, la->source(), "camera.lookat must be [x, y, z]");
      for (size_t i = 0; i < 3; ++i) spec.camera.lookat[i] = (*a)[i].value<double>().value_or(0.0);
    }
    if (!spec.camera.fixed.empty() && mj_name2id(m, mjOBJ_CAMERA, spec.camera.fixed.c_str()) < 0)
      fail_at(path, cam->get("fixed")->source(),
              "no camera named '" + spec.camera.fixed + "' in the model" +
                  did_you_mean(spec.camera.fixed, object_names(m, mjOBJ_CAMERA, m->ncam)));
  }

  Variables vars(model_quantities(m, path), static_cast<int>(spec.actuators.size()));
  if (!spec.reward.empty()) (void)compile_expression(spec.reward, vars, path, "reward.expression");
  if (!spec.teacher_score.empty()) (void)compile_expression(spec.teacher_score, vars, path, "teacher.score");
  for (const auto& [name, expr] : spec.metrics) (void)compile_expression(expr, vars, path, "metrics." + name);
  if (!spec.terminate.empty()) (void)compile_expression(spec.terminate, vars, path, "episode.terminate");
  return spec;
}

}  // namespace

TaskSpec load_task_file(const std::string& path) {
  const toml::table doc = parse_task_file(path);
  if (doc.contains("external"))
    throw UsageError(path + ": this task file describes an external environment ([external]), not a MuJoCo model");
  return load_task_doc(path, doc, false);
}

std::vector<std::string> task_quantities(const TaskSpec& spec) {
  const mjModel* m = task_model(spec.model);
  return Variables(model_quantities(m, spec.file), static_cast<int>(spec.actuators.size())).names;
}

namespace {

// What every instance of a task shares: the checked spec, the model and the EnvSpec.
struct TaskDef {
  TaskSpec task;
  const mjModel* model = nullptr;
  EnvSpec spec;
  int64_t obs_size = 0;
  std::string judged, judged_field;  // the expression behind the rewards (empty: 0) and its field
};

// The definition environments of one task file are made from; a later registration with other
// options replaces it (environments made before keep theirs).
struct TaskHolder {
  std::mutex mu;
  std::shared_ptr<const TaskDef> def;
  TaskOptions options;
  std::shared_ptr<const TaskDef> get() {
    std::lock_guard<std::mutex> lock(mu);
    return def;
  }
};

class TaskEnv : public MujocoEnv {
 public:
  explicit TaskEnv(std::shared_ptr<const TaskDef> def)
      : MujocoEnv(def->model, def->task.frame_skip, def->task.camera),
        def_(std::move(def)),
        vars_(model_quantities(m_, def_->task.file), static_cast<int>(def_->task.actuators.size())),
        obs_vars_(model_quantities(m_, def_->task.file), 0),
        ctrl_(static_cast<size_t>(m_->nu), 0.0f) {
    if (!def_->judged.empty()) reward_ = compile_expression(def_->judged, vars_, def_->task.file, def_->judged_field);
    for (const auto& [name, expr] : def_->task.metrics)
      metrics_.push_back(compile_expression(expr, vars_, def_->task.file, "metrics." + name));
    metric_values_.assign(metrics_.size(), 0.0);
    if (!def_->task.terminate.empty())
      terminate_ = compile_expression(def_->task.terminate, vars_, def_->task.file, "episode.terminate");
    vars_.values[vars_.dt_at()] = dt();
    for (const TaskObsPiece& p : def_->task.observation) {
      for (size_t k = 0; k < p.expressions.size(); ++k)
        obs_exprs_.push_back(compile_expression(p.expressions[k], obs_vars_, def_->task.file, "observation expr"));
      contact_forces_ |= p.source == TaskObsPiece::Source::kContactForce;
    }
  }
  const EnvSpec& spec() const override { return def_->spec; }
  void step_metrics(double* out) const override { std::copy(metric_values_.begin(), metric_values_.end(), out); }
  bool state_from_obs(const float* obs, std::vector<double>* state) const override {
    if (!def_->spec.obs_determines_state) return false;
    state->assign(obs, obs + def_->spec.state_size);  // the observation is qpos ++ qvel
    return true;
  }

 protected:
  void reset_impl(float* obs) override {
    const TaskSpec& t = def_->task;
    std::vector<double> qpos(m_->qpos0, m_->qpos0 + m_->nq);
    for (double& x : qpos)
      x += t.qpos_distribution == "normal" ? t.qpos_noise * rng_.normal() : rng_.uniform(-t.qpos_noise, t.qpos_noise);
    if (t.reset_disc) {  // a point uniform in the disc: rejection sampling
      const double r = t.reset_disc->radius;
      double x, y;
      do {
        x = rng_.uniform(-r, r);
        y = rng_.uniform(-r, r);
      } while (std::hypot(x, y) >= r);
      qpos[t.reset_disc->qpos[0]] = x;
      qpos[t.reset_disc->qpos[1]] = y;
    }
    std::vector<double> qvel = t.qvel_distribution == "normal" ? zero_plus_normal(m_->nv, t.qvel_noise)
                                                               : zero_plus_uniform(m_->nv, t.qvel_noise);
    if (t.reset_disc && t.reset_disc->still) qvel[t.reset_disc->dof[0]] = qvel[t.reset_disc->dof[1]] = 0.0;
    set_qpos_qvel(qpos.data(), qvel.data());
    write_obs(obs);
  }
  StepResult step_impl(const float* action, float* obs) override {
    const std::vector<Quantity>& q = vars_.quantities;
    for (size_t k = 0; k < q.size(); ++k) vars_.values[vars_.prev_at() + k] = read(d_, q[k]);
    double sq = 0.0;
    for (size_t k = 0; k < def_->task.actuators.size(); ++k) {
      const float a = std::isnan(action[k]) ? 0.0f : action[k];
      ctrl_[def_->task.actuators[k]] = a;
      vars_.values[vars_.action_at() + k] = a;
      sq += static_cast<double>(a) * a;
    }
    vars_.values[vars_.action_sq_at()] = sq;
    do_simulation(ctrl_.data());
    for (size_t k = 0; k < q.size(); ++k) vars_.values[k] = read(d_, q[k]);
    vars_.values[vars_.t_at()] = elapsed_steps() + 1;
    StepResult r;
    r.reward = reward_ ? static_cast<float>(reward_->Eval()) : 0.0f;
    for (size_t k = 0; k < metrics_.size(); ++k) metric_values_[k] = metrics_[k]->Eval();
    r.terminated = terminate_ && terminate_->Eval() != 0.0;
    write_obs(obs);
    return r;
  }
  void write_obs(float* obs) const override {
    float* o = obs;
    size_t e = 0;  // into obs_exprs_
    if (!obs_exprs_.empty())
      for (size_t k = 0; k < obs_vars_.quantities.size(); ++k) obs_vars_.values[k] = read(d_, obs_vars_.quantities[k]);
    // mj_step leaves cfrc_ext to be computed on demand (it changes no state).
    if (contact_forces_) mj_rnePostConstraint(m_, d_);
    for (const TaskObsPiece& p : def_->task.observation) {
      if (p.source == TaskObsPiece::Source::kExpression) {
        for (size_t k = 0; k < p.expressions.size(); ++k)
          *o++ = static_cast<float>(std::clamp(obs_exprs_[e++]->Eval(), -p.clip, p.clip));
        continue;
      }
      using S = TaskObsPiece::Source;
      const double* src = p.source == S::kQpos             ? d_->qpos
                          : p.source == S::kQvel           ? d_->qvel
                          : p.source == S::kQfrcConstraint ? d_->qfrc_constraint
                          : p.source == S::kBodyPos        ? d_->xpos
                          : p.source == S::kBodyQuat       ? d_->xquat
                          : p.source == S::kBodyVel        ? d_->cvel
                          : p.source == S::kContactForce   ? d_->cfrc_ext
                                                           : d_->sensordata;
      for (int a : p.addresses) *o++ = static_cast<float>(std::clamp(src[a], -p.clip, p.clip));
    }
  }

 private:
  std::shared_ptr<const TaskDef> def_;
  Variables vars_;
  mutable Variables obs_vars_;  // the state's quantities, for the observation's expressions
  std::vector<std::unique_ptr<mu::Parser>> obs_exprs_;
  bool contact_forces_ = false;  // a piece reads cfrc_ext
  std::unique_ptr<mu::Parser> reward_, terminate_;  // reward_: the judged figure (null: none)
  std::vector<std::unique_ptr<mu::Parser>> metrics_;
  std::vector<double> metric_values_;  // the metrics of the last step
  std::vector<float> ctrl_;  // (nu) the controls: the action's actuators set, the others 0
};

// The definition of a task under `options`: which expression its rewards come from.
std::shared_ptr<const TaskDef> make_task_def(TaskSpec task, const TaskOptions& options) {
  auto def = std::make_shared<TaskDef>();
  def->task = std::move(task);
  const std::string& path = def->task.file;
  def->model = task_model(def->task.model);
  int64_t D = 0;
  for (const TaskObsPiece& p : def->task.observation) D += static_cast<int64_t>(p.addresses.size());
  def->obs_size = D;
  const float big = std::numeric_limits<float>::max();
  EnvSpec& e = def->spec;
  e.name = def->task.name;
  e.reference = def->task.reference;
  e.observation = Space::box({D}, std::vector<float>(D, -big), std::vector<float>(D, big));
  std::vector<float> lo, hi;
  for (int j : def->task.actuators) {
    lo.push_back(static_cast<float>(def->model->actuator_ctrlrange[2 * j]));
    hi.push_back(static_cast<float>(def->model->actuator_ctrlrange[2 * j + 1]));
  }
  e.action = Space::box({static_cast<int64_t>(lo.size())}, lo, hi);
  e.max_episode_steps = def->task.time_limit;
  e.fps = 1.0 / (def->model->opt.timestep * def->task.frame_skip);
  e.can_terminate = !def->task.terminate.empty();
  e.state_size = def->model->nq + def->model->nv;
  // Observations of qpos ++ qvel, whole and unclipped, are the state (clips render from them).
  const auto& obs = def->task.observation;
  auto whole = [&](size_t k, TaskObsPiece::Source source, int count) {
    return obs[k].source == source && static_cast<int>(obs[k].addresses.size()) == count && obs[k].addresses[0] == 0 &&
           std::isinf(obs[k].clip);
  };
  e.obs_determines_state = obs.size() == 2 && whole(0, TaskObsPiece::Source::kQpos, def->model->nq) &&
                           whole(1, TaskObsPiece::Source::kQvel, def->model->nv);
  for (const auto& m : def->task.metrics) e.metrics.push_back(m.first);
  if (options.judge_by_score) {
    def->judged = !options.score.empty() ? options.score : def->task.teacher_score;
    def->judged_field = !options.score.empty() ? "teacher.score (the config's)" : "teacher.score";
    if (def->judged.empty())
      throw UsageError(path + ": the script teacher judges clips by a score, and this task file has no [teacher] "
                       "score; add one, or set teacher.score='an expression' (quantities: docs/tasks.md)");
    if (!options.score.empty()) {
      Variables vars(model_quantities(def->model, path), static_cast<int>(def->task.actuators.size()));
      (void)compile_expression(options.score, vars, path, "teacher.score (the config's)");
    }
    e.has_true_reward = false;  // the rewards are the teacher's score
  } else {
    def->judged = def->task.reward;
    def->judged_field = "reward.expression";
    e.has_true_reward = !def->task.reward.empty();
  }
  return def;
}

}  // namespace

std::string register_task_file(const std::string& path, const TaskOptions& options) {
  if (const std::optional<ExternalEnvOptions> x = external_task(path)) return register_external_env(*x);
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<TaskHolder>> registered;  // absolute path => its definition
  const std::string key = fs::absolute(path).lexically_normal().string();
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = registered.find(key); it != registered.end()) {
    TaskHolder& h = *it->second;
    if (!(h.options == options)) {
      std::shared_ptr<const TaskDef> def = make_task_def(load_task_file(path), options);
      std::lock_guard<std::mutex> hold(h.mu);
      h.def = std::move(def);
      h.options = options;
    }
    return h.get()->task.name;
  }
  auto holder = std::make_shared<TaskHolder>();
  holder->def = make_task_def(load_task_file(path), options);
  holder->options = options;
  const std::string name = holder->def->task.name;
  register_env(name, [holder] { return std::make_unique<TaskEnv>(holder->get()); });
  registered[key] = holder;
  return name;
}

EnvFactory builtin_task_factory(const std::string& file, const std::string& name) {
  const BuiltinTaskFile* found = nullptr;
  for (size_t i = 0; i < kBuiltinTaskFileCount; ++i)
    if (file == kBuiltinTaskFiles[i].name) found = &kBuiltinTaskFiles[i];
  if (!found) throw RuntimeError("no built-in task file '" + file + ".toml'");
  // Loaded at the first environment made (not when the registry fills), then shared.
  struct Lazy {
    std::once_flag once;
    std::shared_ptr<const TaskDef> def;
  };
  auto lazy = std::make_shared<Lazy>();
  return [found, name, lazy] {
    std::call_once(lazy->once, [&] {
      const std::string label = "src/prefrl/envs/mjcf/" + std::string(found->name) + ".toml (built in)";
      toml::table doc;
      try {
        doc = toml::parse(std::string_view(found->toml), label);
      } catch (const toml::parse_error& e) {
        throw RuntimeError(label + ": " + std::string(e.description()));
      }
      TaskSpec task = load_task_doc(label, doc, /*embedded=*/true);
      task.name = name;
      lazy->def = make_task_def(std::move(task), TaskOptions{});
    });
    return std::unique_ptr<Env>(std::make_unique<TaskEnv>(lazy->def));
  };
}

}  // namespace prefrl
