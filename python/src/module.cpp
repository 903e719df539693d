// module.cpp: the `tandem._tandem` extension module: Engine, PreparedModel, typed exceptions.
// The Python package (python/tandem/__init__.py) adds the ONNX Runtime style session on top.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arrays.h"
#include "interrupt.h"
#include "options.h"
#include "tandem/engine.h"
#include "tandem/telemetry.h"

namespace tandem::python {
namespace {

namespace py = pybind11;

constexpr int kCodes = static_cast<int>(StatusCode::internal) + 1;
std::array<PyObject*, kCodes> g_errors{};  // exception class per StatusCode (ok: unused)
PyObject* g_error_base = nullptr;
thread_local double t_last_infer_ms = 0;  // engine-side duration of this thread's last request

[[noreturn]] void raise(const Status& s) {
  const int c = static_cast<int>(s.code());
  PyObject* cls = (c > 0 && c < kCodes && g_errors[c]) ? g_errors[c] : g_error_base;
  PyErr_SetString(cls, s.message().c_str());
  throw py::error_already_set();
}
template <class T>
T unwrap(Result<T>&& r) {
  if (!r.is_ok()) raise(r.status());
  return std::move(r).value();
}

py::object dim_to_python(const IoDim& d) {
  if (d.value >= 0) return py::int_(d.value);
  if (!d.symbol.empty()) return py::str(d.symbol);
  return py::none();
}

py::dict io_info_to_python(const IoInfo& i) {
  py::dict d;
  d["name"] = i.name;
  d["kind"] = i.kind;
  d["dtype"] = std::string(dtype_name(i.dtype));
  py::list shape;
  for (const IoDim& dim : i.dims) shape.append(dim_to_python(dim));
  d["shape"] = i.has_shape ? py::object(shape) : py::object(py::none());
  d["type"] = i.type;
  d["ort_type"] = ort_type_name(i.kind, i.dtype);
  d["required"] = i.required;
  return d;
}

py::object json_to_python(const std::string& text) {
  static auto* loads = new py::object(py::module_::import("json").attr("loads"));  // leaked: see arrays.cpp
  return (*loads)(text);
}

struct PyPrepared {
  std::shared_ptr<PreparedModel> model;
  std::map<std::string, DataType> input_dtypes;  // every graph input
  std::vector<std::string> required;             // inputs without a default
  std::vector<std::string> output_names;         // declared order

  explicit PyPrepared(std::shared_ptr<PreparedModel> m) : model(std::move(m)) {
    for (const IoInfo& i : model->io_schema().inputs) {
      input_dtypes[i.name] = i.dtype;
      if (i.required) required.push_back(i.name);
    }
    for (const IoInfo& o : model->io_schema().outputs) output_names.push_back(o.name);
  }

  std::string input_list() const {
    std::string s;
    for (const auto& [n, _] : input_dtypes) s += (s.empty() ? "" : ", ") + n;
    return s;
  }

  // One request. The engine copies what a backend call uses, so an abandoned call (Ctrl-C, a
  // deadline) never reaches back into this.
  struct Call {
    std::map<std::string, Value> inputs;
    InferOptions options;
    Result<InferResult> result{Status(StatusCode::internal, "the request did not run")};
  };

  std::map<std::string, Value> inputs_from(const py::dict& feed) const {
    std::map<std::string, Value> inputs;
    for (auto item : feed) {
      if (!py::isinstance<py::str>(item.first)) raise(invalid_argument("input names must be strings"));
      std::string name = item.first.cast<std::string>();
      auto it = input_dtypes.find(name);
      if (it == input_dtypes.end())
        raise(invalid_argument("'" + name + "' is not an input of model '" + model->name() + "' (inputs: " + input_list() + ")"));
      Tensor t = unwrap(tensor_from_python(name, item.second, it->second));
      const DataType want = it->second;
      if (want != DataType::undefined && t.dtype() != want)
        raise(invalid_argument("input '" + name + "': expected " + ort_type_name("tensor", want) + ", got " +
                               ort_type_name("tensor", t.dtype())));
      inputs.emplace(std::move(name), Value::of(std::move(t)));
    }
    for (const std::string& r : required)
      if (!inputs.count(r)) raise(invalid_argument("missing input '" + r + "' of model '" + model->name() + "'"));
    return inputs;
  }

  std::shared_ptr<Call> infer(const py::dict& feed, std::optional<double> deadline_ms) {
    auto call = std::make_shared<Call>();
    call->inputs = inputs_from(feed);
    if (deadline_ms) {
      if (*deadline_ms <= 0) raise(invalid_argument("deadline_ms must be positive"));
      call->options.timeout_ms = *deadline_ms;
    }
    SignalWatch watch;
    watch_signals(&call->options, &watch);
    {
      py::gil_scoped_release nogil;
      call->result = model->infer(call->inputs, call->options);
    }
    if (watch.raised) throw py::error_already_set();
    if (!call->result.is_ok()) raise(call->result.status());
    t_last_infer_ms = call->result->timings.total_ms;
    return call;
  }

  // The overhead benchmark's baseline: `iters` engine calls made from C++ on this thread, each
  // timed by its caller (microseconds; the result is dropped inside the timing, as a C++ caller
  // would drop it). Stops at the first failed call.
  std::vector<double> time_engine_calls(const py::dict& feed, int iters) {
    const std::map<std::string, Value> inputs = inputs_from(feed);
    std::vector<double> us;
    us.reserve(static_cast<size_t>(std::max(iters, 0)));
    py::gil_scoped_release nogil;
    for (int i = 0; i < iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const bool ok = model->infer(inputs, InferOptions{}).is_ok();
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      if (!ok) break;
    }
    return us;
  }

  py::dict infer_dict(const py::dict& feed, std::optional<double> deadline_ms, bool strict, bool return_info) {
    auto call = infer(feed, deadline_ms);
    InferResult& r = *call->result;
    if (strict && !r.fallback_reason.empty())
      raise(Status(StatusCode::unavailable, "model '" + model->name() + "': strict: the first route did not answer (" +
                                                r.fallback_reason + "); served by " + r.backend));
    py::dict out;
    for (const std::string& n : r.output_order) out[py::str(n)] = value_to_python(std::move(r.outputs.at(n)));
    if (!return_info) return out;
    py::dict info;
    info["backend"] = r.backend;
    info["fallback_reason"] = r.fallback_reason;
    info["attempts"] = r.attempts;
    info["queue_ms"] = r.timings.queue_ms;
    info["compute_ms"] = r.timings.compute_ms;
    info["total_ms"] = r.timings.total_ms;
    py::dict both;
    both["outputs"] = out;
    both["info"] = info;
    return both;
  }

  py::list run(const py::object& output_names, const py::dict& feed, std::optional<double> deadline_ms) {
    std::vector<std::string> names;
    if (output_names.is_none()) {
      names = output_names_copy();
    } else {
      for (auto n : output_names) names.push_back(py::str(n).cast<std::string>());
      for (const std::string& n : names) {
        bool known = false;
        for (const std::string& o : output_names_copy()) known = known || o == n;
        if (!known) raise(invalid_argument("'" + n + "' is not an output of model '" + model->name() + "'"));
      }
    }
    auto call = infer(feed, deadline_ms);
    InferResult& r = *call->result;
    py::list out;
    std::map<std::string, py::object> converted;  // an output asked for twice is one array
    for (const std::string& n : names) {
      auto done = converted.find(n);
      if (done != converted.end()) {
        out.append(done->second);
        continue;
      }
      auto it = r.outputs.find(n);
      if (it == r.outputs.end()) raise(internal_error("output '" + n + "' missing from the result"));
      py::object a = value_to_python(std::move(it->second));
      converted.emplace(n, a);
      out.append(a);
    }
    return out;
  }
  const std::vector<std::string>& output_names_copy() const { return output_names; }
};

struct PyEngine {
  std::unique_ptr<Engine> engine;
  std::mutex mu;
  std::vector<std::weak_ptr<PreparedModel>> models;

  std::shared_ptr<PyPrepared> prepare(const py::object& model, const py::kwargs& kw) {
    PrepareOptions opts;
    if (Status s = prepare_options_from_kwargs(kw, &opts); !s.is_ok()) raise(s);
    Result<std::shared_ptr<PreparedModel>> r = invalid_argument("");
    if (py::isinstance<py::bytes>(model)) {
      std::string bytes = model.cast<std::string>();
      py::gil_scoped_release nogil;
      r = engine->prepare_bytes(bytes, opts);
    } else {
      std::string path = py::str(py::module_::import("os").attr("fspath")(model)).cast<std::string>();
      py::gil_scoped_release nogil;
      r = engine->prepare(path, opts);
    }
    auto m = unwrap(std::move(r));
    {
      std::lock_guard<std::mutex> lock(mu);
      std::erase_if(models, [](const auto& w) { return w.expired(); });
      models.push_back(m);
    }
    return std::make_shared<PyPrepared>(std::move(m));
  }

  py::dict telemetry() {
    std::vector<std::shared_ptr<PreparedModel>> alive;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& w : models)
        if (auto m = w.lock()) alive.push_back(std::move(m));
    }
    py::list list;
    for (const auto& m : alive) list.append(json_to_python(telemetry_to_json(m->telemetry())));
    py::dict d;
    d["backends"] = engine->backends();
    d["models"] = list;
    return d;
  }
};

py::dict sla_to_python(const SlaEstimate& s) {
  py::dict d;
  d["measured"] = s.measured;
  d["estimate_ms"] = s.estimate_ms;
  d["warmup_runs"] = s.warmup_runs;
  d["per_backend_ms"] = s.per_backend_ms;
  d["per_backend_runs"] = s.per_backend_runs;
  d["deadline_margin_ms"] = s.deadline_margin_ms;
  d["warmup_shapes"] = s.warmup_shapes;
  d["note"] = s.note;
  d["warmed_batch_sizes"] = s.warmed_batch_sizes;
  static const char* const verdicts[] = {"unchecked", "independent", "dependent"};
  py::dict rows;
  rows["verdict"] = verdicts[static_cast<int>(s.batch_rows.verdict)];
  rows["detail"] = s.batch_rows.detail;
  d["batch_rows"] = rows;
  return d;
}

py::dict placement_to_python(const PlacementInfo& p) {
  py::list routes;
  for (const auto& r : p.routes) {
    py::list nodes;
    for (const auto& n : r.nodes) {
      py::dict nd;
      nd["node"] = n.node;
      nd["op_type"] = n.op_type;
      nd["backend"] = n.backend;
      nd["declined"] = n.declined;
      nodes.append(nd);
    }
    py::dict rd;
    rd["backend"] = r.backend;
    rd["segments"] = r.segments;
    rd["nodes_per_backend"] = r.nodes_per_backend;
    rd["nodes"] = nodes;
    routes.append(rd);
  }
  py::dict d;
  d["routes"] = routes;
  d["notes"] = p.notes;
  d["text"] = p.to_string();
  return d;
}

py::dict capabilities_to_python(const Capabilities& c) {
  py::dict d;
  d["device"] = c.device;
  std::vector<std::string> dtypes;
  for (DataType t : c.dtypes) dtypes.emplace_back(dtype_name(t));
  d["dtypes"] = dtypes;
  d["requested_backend"] = c.requested_backend;
  d["actual_backend"] = c.actual_backend;
  d["node_share"] = c.node_share;
  d["p50_ms"] = c.p50_ms;
  d["p99_ms"] = c.p99_ms;
  d["routes"] = c.routes;
  d["compute_units"] = c.compute_units;
  d["precision"] = c.precision;
  return d;
}

struct ErrorSpec {
  StatusCode code;
  const char* name;
  PyObject* extra_base;  // a builtin the class also derives from, or null
  const char* doc;
};

}  // namespace
}  // namespace tandem::python

using namespace tandem;
using namespace tandem::python;

PYBIND11_MODULE(_tandem, m) {
  m.doc() = "tandem: ONNX inference engine (native part; import `tandem`, not this module)";
  m.attr("__version__") = TANDEM_VERSION;

  g_error_base = PyErr_NewExceptionWithDoc("tandem.Error", "Base class of every error tandem raises.", PyExc_Exception, nullptr);
  py::setattr(g_error_base, "code", py::str(""));
  m.add_object("Error", py::handle(g_error_base));
  const ErrorSpec specs[] = {
      {StatusCode::invalid_argument, "InvalidArgument", PyExc_ValueError, "The caller passed something wrong: name, dtype, shape or option."},
      {StatusCode::invalid_model, "InvalidModel", nullptr, "The model file or graph is malformed."},
      {StatusCode::unsupported, "Unsupported", nullptr, "No backend in the chain can run this (op, dtype or precision)."},
      {StatusCode::device_error, "DeviceError", nullptr, "A backend failed while running."},
      {StatusCode::timeout, "Timeout", PyExc_TimeoutError, "The deadline passed."},
      {StatusCode::out_of_memory, "OutOfMemory", nullptr, "A backend ran out of memory."},
      {StatusCode::parity_violation, "ParityViolation", nullptr, "Outputs drifted from the reference beyond the budget."},
      {StatusCode::cancelled, "Cancelled", nullptr, "The request was cancelled."},
      {StatusCode::unavailable, "Unavailable", nullptr, "No backend may serve (breaker open in strict mode, or strict infer saw a fallback)."},
      {StatusCode::internal, "InternalError", nullptr, "A bug in tandem."},
  };
  for (const ErrorSpec& s : specs) {
    PyObject* bases = s.extra_base ? PyTuple_Pack(2, g_error_base, s.extra_base) : PyTuple_Pack(1, g_error_base);
    const std::string qual = std::string("tandem.") + s.name;
    PyObject* cls = PyErr_NewExceptionWithDoc(qual.c_str(), s.doc, bases, nullptr);
    Py_DECREF(bases);
    if (!cls) throw py::error_already_set();
    py::setattr(cls, "code", py::str(std::string(status_code_name(s.code))));
    g_errors[static_cast<int>(s.code)] = cls;
    m.add_object(s.name, py::handle(cls));
  }

  m.def("set_interruptible", &set_interruptible, py::arg("on"), py::arg("check_interval_ms") = 10.0,
        "on (default True): a call waiting on the main thread checks for Ctrl-C (runs pending signal "
        "handlers) every check_interval_ms and is cancelled when one raises. Off: Ctrl-C is seen when "
        "the call returns.");
  m.def("interruptible", &interruptible);
  m.def("last_infer_ms", [] { return t_last_infer_ms; },
        "How long the engine's infer() took (its own clock, ms) in this thread's last successful request "
        "(for measuring what the bindings add).");
  m.def("interrupt_check_interval_ms", &interrupt_check_interval_ms);

  py::class_<PyPrepared, std::shared_ptr<PyPrepared>>(m, "PreparedModel",
                                                      "A model prepared by an Engine; thread-safe, may outlive its Engine.")
      .def("infer", &PyPrepared::infer_dict, py::arg("inputs"), py::kw_only(), py::arg("deadline_ms") = py::none(),
           py::arg("strict") = false, py::arg("return_info") = false,
           "Runs one request. inputs: dict name -> array. Returns dict name -> array (declared output order); "
           "with return_info=True, {'outputs': ..., 'info': {backend, fallback_reason, attempts, queue_ms, "
           "compute_ms, total_ms}}. deadline_ms: time allowed from now. strict=True raises tandem.Unavailable "
           "when the answer did not come from the first route (to forbid fallback entirely, prepare with strict=True).")
      .def("run", &PyPrepared::run, py::arg("output_names"), py::arg("input_feed"), py::arg("deadline_ms") = py::none(),
           "ONNX Runtime style: outputs (list of arrays) in the order of output_names (None: all).")
      .def("_time_engine_calls", &PyPrepared::time_engine_calls, py::arg("inputs"), py::arg("iters"),
           "For bench/python_overhead.py: times `iters` engine calls made from C++ (microseconds each).")
      .def_property_readonly("name", [](const PyPrepared& p) { return p.model->name(); })
      .def_property_readonly("cache_key", [](const PyPrepared& p) { return p.model->cache_key(); })
      .def_property_readonly("cache_key_text", [](const PyPrepared& p) { return p.model->cache_key_text(); })
      .def_property_readonly("io_schema", [](const PyPrepared& p) {
        py::dict d;
        py::list in, out;
        for (const IoInfo& i : p.model->io_schema().inputs) in.append(io_info_to_python(i));
        for (const IoInfo& o : p.model->io_schema().outputs) out.append(io_info_to_python(o));
        d["inputs"] = in;
        d["outputs"] = out;
        return d;
      })
      .def_property_readonly("sla_estimate", [](const PyPrepared& p) { return sla_to_python(p.model->sla_estimate()); })
      .def("placement", [](const PyPrepared& p) { return placement_to_python(p.model->placement()); })
      .def("capabilities", [](const PyPrepared& p) { return capabilities_to_python(p.model->capabilities()); })
      .def("telemetry", [](const PyPrepared& p) { return json_to_python(telemetry_to_json(p.model->telemetry())); })
      .def("telemetry_prometheus", [](const PyPrepared& p) { return telemetry_to_prometheus({p.model->telemetry()}); })
      .def("drain_parity", [](const PyPrepared& p, double timeout_ms) {
        py::gil_scoped_release nogil;
        return p.model->drain_parity(timeout_ms);
      }, py::arg("timeout_ms") = 5000.0);

  py::class_<PyEngine, std::shared_ptr<PyEngine>>(m, "Engine", "Owns backends; prepares models.")
      .def(py::init([](std::optional<std::vector<std::string>> backends, int threads, std::optional<std::string> cache_dir,
                       int max_workers_per_backend, int max_hung_calls_per_backend) {
             EngineOptions o;
             if (backends) o.backends = *backends;
             o.threads = threads;
             if (cache_dir) o.cache_dir = *cache_dir;
             o.max_workers_per_backend = max_workers_per_backend;
             o.max_hung_calls_per_backend = max_hung_calls_per_backend;
             auto e = std::make_shared<PyEngine>();
             e->engine = unwrap(Engine::create(o));
             return e;
           }),
           py::kw_only(), py::arg("backends") = py::none(), py::arg("threads") = 0, py::arg("cache_dir") = py::none(),
           py::arg("max_workers_per_backend") = 0, py::arg("max_hung_calls_per_backend") = 16)
      .def("prepare", &PyEngine::prepare, py::arg("model"),
           "Prepares a model (path or bytes); keyword arguments are PrepareOptions fields.")
      .def_property_readonly("backends", [](const PyEngine& e) { return e.engine->backends(); })
      .def("telemetry", &PyEngine::telemetry, "Telemetry of every live model prepared here, as a dict.")
      .def("telemetry_prometheus", [](const PyEngine& e) { return e.engine->metrics_prometheus(); },
           "Telemetry of every live prepared model, Prometheus text format.");
}
