// The C ABI (include/tandem/tandem.h) over the C++ engine. Every entry point catches
// everything (the C side cannot see exceptions) and reports through status + last error.
#include "tandem/tandem.h"

#include <atomic>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "engine/inputs.h"
#include "engine/telemetry_json.h"
#include "tandem/engine.h"

struct tandem_engine {
  std::unique_ptr<tandem::Engine> engine;
};

struct tandem_model {
  std::shared_ptr<tandem::PreparedModel> model;
};

struct tandem_cancel_token {
  std::atomic<bool> flag{false};
};

namespace {

using tandem::Status;
using tandem::StatusCode;

thread_local std::string g_last_error;

tandem_status to_c(StatusCode c) { return static_cast<tandem_status>(static_cast<int>(c)); }

tandem_status set_error(const Status& s) {
  g_last_error = s.message();
  return to_c(s.code());
}
tandem_status set_error(tandem_status code, const std::string& message) {
  g_last_error = message;
  return code;
}

// Runs `f` (returning tandem_status), turning any escaping exception into a status.
template <class F>
tandem_status guarded(F&& f) {
  try {
    g_last_error.clear();
    return f();
  } catch (const std::bad_alloc&) {
    return set_error(TANDEM_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(TANDEM_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(TANDEM_INTERNAL, "internal error");
  }
}

bool supported_dtype(int32_t d) {
  switch (d) {
    case TANDEM_FLOAT32: case TANDEM_UINT8: case TANDEM_INT8: case TANDEM_UINT16: case TANDEM_INT16:
    case TANDEM_INT32: case TANDEM_INT64: case TANDEM_BOOL: case TANDEM_FLOAT16: case TANDEM_FLOAT64:
    case TANDEM_UINT32: case TANDEM_UINT64: case TANDEM_BFLOAT16:
      return true;
    default:
      return false;
  }
}

tandem::Result<tandem::PrepareOptions> convert(const tandem_prepare_options* o) {
  tandem::PrepareOptions p;
  if (!o) return p;
  switch (o->compute_units) {
    case TANDEM_UNITS_ALL: p.compute_units = tandem::ComputeUnits::all; break;
    case TANDEM_UNITS_CPU_ONLY: p.compute_units = tandem::ComputeUnits::cpu_only; break;
    case TANDEM_UNITS_CPU_AND_GPU: p.compute_units = tandem::ComputeUnits::cpu_and_gpu; break;
    case TANDEM_UNITS_CPU_AND_NE: p.compute_units = tandem::ComputeUnits::cpu_and_ne; break;
    default: return tandem::invalid_argument("unknown compute_units " + std::to_string(o->compute_units));
  }
  p.fallback = o->strict ? tandem::FallbackPolicy::strict : tandem::FallbackPolicy::fallback;
  p.latency_sla_ms = o->latency_sla_ms;
  p.default_deadline_ms = o->default_deadline_ms;
  p.parity_sample_rate = o->parity_sample_rate;
  p.output_guard = o->output_guard != 0;
  if (o->fault_injection) p.fault_injection = o->fault_injection;
  if (o->name) p.name = o->name;
  if (o->warmup_runs >= 0) p.warmup_runs = o->warmup_runs;
  if (o->input_shapes) {
    const std::string text = o->input_shapes;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find(';', pos);
      if (end == std::string::npos) end = text.size();
      const std::string item = text.substr(pos, end - pos);
      pos = end + 1;
      if (item.empty()) continue;
      const size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0) return tandem::invalid_argument("input_shapes: expected NAME=DIMS, got '" + item + "'");
      auto dims = tandem::parse_dims(item.substr(eq + 1));
      if (!dims) return dims.status().with_prefix("input_shapes: ");
      p.input_shapes[item.substr(0, eq)] = *dims;
    }
  }
  return p;
}

tandem_status describe(const tandem::IoInfo& io, const char** name, int32_t* dtype, int32_t* rank,
                       int64_t shape[TANDEM_MAX_RANK]) {
  if (name) *name = io.name.c_str();
  if (dtype) *dtype = static_cast<int32_t>(io.dtype);
  if (rank) *rank = io.has_shape ? static_cast<int32_t>(io.dims.size()) : -1;
  if (shape)
    for (size_t i = 0; i < TANDEM_MAX_RANK; ++i) shape[i] = i < io.dims.size() ? io.dims[i].value : 0;
  return TANDEM_OK;
}

tandem_status write_text(const std::string& text, char* buffer, size_t capacity, size_t* needed) {
  if (needed) *needed = text.size() + 1;
  if (!buffer || capacity < text.size() + 1)
    return set_error(TANDEM_BUFFER_TOO_SMALL, "the buffer needs " + std::to_string(text.size() + 1) + " bytes");
  std::memcpy(buffer, text.c_str(), text.size() + 1);
  return TANDEM_OK;
}

}  // namespace

extern "C" {

int32_t tandem_api_version(void) { return TANDEM_API_VERSION; }
int32_t tandem_abi_version(void) { return TANDEM_ABI_VERSION; }

const char* tandem_status_name(tandem_status status) {
  if (status == TANDEM_BUFFER_TOO_SMALL) return "buffer_too_small";
  if (status < TANDEM_OK || status > TANDEM_INTERNAL) return "unknown";
  return tandem::status_code_name(static_cast<StatusCode>(status)).data();  // static storage
}

const char* tandem_last_error(void) { return g_last_error.c_str(); }

void tandem_engine_options_init(tandem_engine_options* options) {
  if (options) *options = tandem_engine_options{nullptr, 0, nullptr};
}

void tandem_prepare_options_init(tandem_prepare_options* options) {
  if (!options) return;
  *options = tandem_prepare_options{};
  options->compute_units = TANDEM_UNITS_ALL;
  options->warmup_runs = -1;
}

tandem_status tandem_engine_create(const tandem_engine_options* options, tandem_engine** out) {
  return guarded([&] {
    if (!out) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_engine_create: out is NULL");
    *out = nullptr;
    tandem::EngineOptions eo;
    if (options) {
      if (options->backends) {
        const std::string list = options->backends;
        size_t pos = 0;
        while (pos <= list.size()) {
          size_t end = list.find(',', pos);
          if (end == std::string::npos) end = list.size();
          if (end > pos) eo.backends.push_back(list.substr(pos, end - pos));
          pos = end + 1;
        }
      }
      eo.threads = options->threads;
      if (options->cache_dir) eo.cache_dir = options->cache_dir;
    }
    auto engine = tandem::Engine::create(eo);
    if (!engine) return set_error(engine.status());
    *out = new tandem_engine{std::move(engine).value()};
    return TANDEM_OK;
  });
}

void tandem_engine_destroy(tandem_engine* engine) { delete engine; }

tandem_status tandem_prepare_file(tandem_engine* engine, const char* path, const tandem_prepare_options* options,
                                  tandem_model** out) {
  return guarded([&] {
    if (!engine || !path || !out) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_prepare_file: NULL argument");
    *out = nullptr;
    auto po = convert(options);
    if (!po) return set_error(po.status());
    auto m = engine->engine->prepare(path, *po);
    if (!m) return set_error(m.status());
    *out = new tandem_model{std::move(m).value()};
    return TANDEM_OK;
  });
}

tandem_status tandem_prepare_bytes(tandem_engine* engine, const void* bytes, size_t size,
                                   const tandem_prepare_options* options, tandem_model** out) {
  return guarded([&] {
    if (!engine || !bytes || !out) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_prepare_bytes: NULL argument");
    *out = nullptr;
    auto po = convert(options);
    if (!po) return set_error(po.status());
    auto m = engine->engine->prepare_bytes(std::string_view(static_cast<const char*>(bytes), size), *po);
    if (!m) return set_error(m.status());
    *out = new tandem_model{std::move(m).value()};
    return TANDEM_OK;
  });
}

void tandem_model_destroy(tandem_model* model) { delete model; }

size_t tandem_model_input_count(const tandem_model* model) {
  return model ? model->model->io_schema().inputs.size() : 0;
}
size_t tandem_model_output_count(const tandem_model* model) {
  return model ? model->model->io_schema().outputs.size() : 0;
}

tandem_status tandem_model_input(const tandem_model* model, size_t index, const char** name, int32_t* dtype,
                                 int32_t* rank, int64_t shape[TANDEM_MAX_RANK]) {
  return guarded([&] {
    if (!model || index >= model->model->io_schema().inputs.size())
      return set_error(TANDEM_INVALID_ARGUMENT, "tandem_model_input: no input " + std::to_string(index));
    return describe(model->model->io_schema().inputs[index], name, dtype, rank, shape);
  });
}

tandem_status tandem_model_output(const tandem_model* model, size_t index, const char** name, int32_t* dtype,
                                  int32_t* rank, int64_t shape[TANDEM_MAX_RANK]) {
  return guarded([&] {
    if (!model || index >= model->model->io_schema().outputs.size())
      return set_error(TANDEM_INVALID_ARGUMENT, "tandem_model_output: no output " + std::to_string(index));
    return describe(model->model->io_schema().outputs[index], name, dtype, rank, shape);
  });
}

const char* tandem_model_cache_key(const tandem_model* model) { return model ? model->model->cache_key().c_str() : ""; }

double tandem_model_sla_estimate_ms(const tandem_model* model) {
  return model ? model->model->sla_estimate().estimate_ms : 0.0;
}

tandem_status tandem_cancel_token_create(tandem_cancel_token** out) {
  return guarded([&] {
    if (!out) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_cancel_token_create: out is NULL");
    *out = new tandem_cancel_token();
    return TANDEM_OK;
  });
}
void tandem_cancel_token_cancel(tandem_cancel_token* token) {
  if (token) token->flag.store(true);
}
void tandem_cancel_token_destroy(tandem_cancel_token* token) { delete token; }

tandem_status tandem_infer(tandem_model* model, const tandem_tensor* inputs, size_t input_count, tandem_tensor* outputs,
                           size_t output_count, const tandem_infer_options* options, tandem_infer_info* info) {
  return guarded([&] {
    if (!model) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_infer: model is NULL");
    if ((input_count && !inputs) || (output_count && !outputs))
      return set_error(TANDEM_INVALID_ARGUMENT, "tandem_infer: NULL tensor array");
    const tandem::IoSchema& schema = model->model->io_schema();
    std::map<std::string, tandem::Value> provided;
    for (size_t i = 0; i < input_count; ++i) {
      const tandem_tensor& t = inputs[i];
      const std::string name = t.name ? t.name : (i < schema.inputs.size() ? schema.inputs[i].name : "");
      if (!supported_dtype(t.dtype))
        return set_error(TANDEM_INVALID_ARGUMENT, "input '" + name + "': unsupported dtype " + std::to_string(t.dtype));
      if (t.rank < 0 || t.rank > TANDEM_MAX_RANK)
        return set_error(TANDEM_INVALID_ARGUMENT, "input '" + name + "': rank " + std::to_string(t.rank) + " out of range");
      tandem::Shape shape(t.shape, t.shape + t.rank);
      for (int64_t d : shape)
        if (d < 0) return set_error(TANDEM_INVALID_ARGUMENT, "input '" + name + "': negative dim");
      tandem::Tensor tensor(static_cast<tandem::DataType>(t.dtype), shape);
      if (t.bytes != tensor.nbytes())
        return set_error(TANDEM_INVALID_ARGUMENT, "input '" + name + "' has " + std::to_string(t.bytes) +
                                                      " bytes, its dtype and shape need " + std::to_string(tensor.nbytes()));
      if (tensor.nbytes() && !t.data) return set_error(TANDEM_INVALID_ARGUMENT, "input '" + name + "': data is NULL");
      if (tensor.nbytes()) std::memcpy(tensor.raw_data(), t.data, tensor.nbytes());
      provided[name] = tandem::Value::of(std::move(tensor));
    }
    tandem::InferOptions io;
    if (options) {
      io.timeout_ms = options->timeout_ms;
      if (options->cancel) io.cancel = &options->cancel->flag;
    }
    auto r = model->model->infer(provided, io);
    if (!r) return set_error(r.status());
    if (info) {
      std::memset(info->backend, 0, sizeof(info->backend));
      std::strncpy(info->backend, r->backend.c_str(), sizeof(info->backend) - 1);
      info->fell_back = !r->fallback_reason.empty();
      info->attempts = r->attempts;
      info->queue_ms = r->timings.queue_ms;
      info->compute_ms = r->timings.compute_ms;
      info->total_ms = r->timings.total_ms;
    }
    bool too_small = false;
    for (size_t i = 0; i < output_count; ++i) {
      tandem_tensor& o = outputs[i];
      std::string name;
      if (o.name) name = o.name;
      else if (i < r->output_order.size()) name = r->output_order[i];
      auto it = r->outputs.find(name);
      if (it == r->outputs.end()) return set_error(TANDEM_INVALID_ARGUMENT, "no output named '" + name + "'");
      const tandem::Value& v = it->second;
      if (!v.is_tensor() || !supported_dtype(static_cast<int32_t>(v.tensor.dtype())) || v.tensor.rank() > TANDEM_MAX_RANK)
        return set_error(TANDEM_UNSUPPORTED, "output '" + name + "' is not a tensor the C API can return");
      o.dtype = static_cast<int32_t>(v.tensor.dtype());
      o.rank = static_cast<int32_t>(v.tensor.rank());
      for (size_t d = 0; d < TANDEM_MAX_RANK; ++d) o.shape[d] = d < v.tensor.rank() ? v.tensor.dim(d) : 0;
      o.bytes_needed = v.tensor.nbytes();
      if (o.bytes < o.bytes_needed || (o.bytes_needed && !o.data)) {
        too_small = true;
        continue;
      }
      if (o.bytes_needed) std::memcpy(o.data, v.tensor.raw_data(), o.bytes_needed);
    }
    if (too_small) return set_error(TANDEM_BUFFER_TOO_SMALL, "an output buffer is too small; see bytes_needed");
    return TANDEM_OK;
  });
}

tandem_status tandem_model_metrics_json(tandem_model* model, char* buffer, size_t capacity, size_t* needed) {
  return guarded([&] {
    if (!model) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_model_metrics_json: model is NULL");
    return write_text(tandem::telemetry_to_json(model->model->telemetry()), buffer, capacity, needed);
  });
}

tandem_status tandem_model_metrics_prometheus(tandem_model* model, char* buffer, size_t capacity, size_t* needed) {
  return guarded([&] {
    if (!model) return set_error(TANDEM_INVALID_ARGUMENT, "tandem_model_metrics_prometheus: model is NULL");
    return write_text(tandem::telemetry_to_prometheus({model->model->telemetry()}), buffer, capacity, needed);
  });
}

}  // extern "C"
