/* tandem.h: the C ABI of the tandem engine.
 *
 * Opaque handles, status codes, caller-owned buffers. Nothing here throws or aborts.
 *
 *   tandem_engine* engine;  tandem_model* model;
 *   tandem_engine_create(NULL, &engine);
 *   tandem_prepare_options po; tandem_prepare_options_init(&po);
 *   tandem_prepare_file(engine, "m.onnx", &po, &model);
 *   tandem_tensor in = {"x", TANDEM_FLOAT32, 4, {1, 3, 48, 192}, data, bytes};
 *   tandem_tensor out = {"y", 0, 0, {0}, buffer, sizeof buffer};   // name selects the output
 *   tandem_infer(model, &in, 1, &out, 1, NULL, NULL);            // fills out.dtype/rank/shape
 *   tandem_model_destroy(model); tandem_engine_destroy(engine);
 *
 * Ownership: every handle is created by a tandem_*_create / tandem_prepare_* call and freed by
 * the matching *_destroy call (NULL is accepted there). A model may outlive its engine.
 * Strings returned by tandem (names, error messages) are owned by tandem: names live as long
 * as their model; tandem_last_error() text lives until the calling thread's next tandem call.
 * Input buffers are borrowed for the call (and possibly a little longer by an abandoned
 * backend call: tandem copies them, so they may be reused as soon as tandem_infer returns).
 * Output buffers belong to the caller; when one is too small tandem_infer returns
 * TANDEM_BUFFER_TOO_SMALL and writes each output's dtype, shape and required byte count so
 * the caller can retry.
 * Thread-safety: handles are thread-safe; many threads may call tandem_infer on one model.
 * Units: times in milliseconds; sizes in bytes.
 */
#ifndef TANDEM_TANDEM_H_
#define TANDEM_TANDEM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change of this header. */
#define TANDEM_API_VERSION 1
/* The binary interface of the shared library: libtandem.so.<TANDEM_ABI_VERSION> is its SONAME.
 * Bumped (and the SONAME with it) whenever a program built against an older libtandem.so
 * could misbehave with the new one: a removed or changed exported function, a changed
 * struct layout or enum value, in this C ABI or in the exported C++ API. Additions keep it.
 * docs/install.md describes the policy. */
#define TANDEM_ABI_VERSION 2
#define TANDEM_MAX_RANK 8

typedef enum tandem_status {
  TANDEM_OK = 0,
  TANDEM_INVALID_ARGUMENT = 1,
  TANDEM_INVALID_MODEL = 2,
  TANDEM_UNSUPPORTED = 3,
  TANDEM_DEVICE_ERROR = 4,
  TANDEM_TIMEOUT = 5,
  TANDEM_OUT_OF_MEMORY = 6,
  TANDEM_PARITY_VIOLATION = 7,
  TANDEM_CANCELLED = 8,
  TANDEM_UNAVAILABLE = 9,
  TANDEM_INTERNAL = 10,
  TANDEM_BUFFER_TOO_SMALL = 11 /* C ABI only: an output buffer is too small */
} tandem_status;

/* Element types; numbering matches onnx.TensorProto.DataType. Strings are not supported here. */
typedef enum tandem_dtype {
  TANDEM_UNDEFINED = 0,
  TANDEM_FLOAT32 = 1,
  TANDEM_UINT8 = 2,
  TANDEM_INT8 = 3,
  TANDEM_UINT16 = 4,
  TANDEM_INT16 = 5,
  TANDEM_INT32 = 6,
  TANDEM_INT64 = 7,
  TANDEM_BOOL = 9,
  TANDEM_FLOAT16 = 10,
  TANDEM_FLOAT64 = 11,
  TANDEM_UINT32 = 12,
  TANDEM_UINT64 = 13,
  TANDEM_BFLOAT16 = 16
} tandem_dtype;

typedef enum tandem_compute_units {
  TANDEM_UNITS_ALL = 0,
  TANDEM_UNITS_CPU_ONLY = 1,
  TANDEM_UNITS_CPU_AND_GPU = 2,
  TANDEM_UNITS_CPU_AND_NE = 3 /* reserved: prepare answers TANDEM_UNSUPPORTED */
} tandem_compute_units;

typedef struct tandem_engine tandem_engine;
typedef struct tandem_model tandem_model;
/* A cancellation flag shared between the caller and requests (thread-safe). */
typedef struct tandem_cancel_token tandem_cancel_token;

/* A dense tensor. For inputs every field is read. For outputs `name` selects the output (NULL:
 * the output at the same position), `data`/`bytes` are the caller's buffer and its capacity,
 * and tandem writes dtype, rank, shape and `bytes_needed`. */
typedef struct tandem_tensor {
  const char* name;
  int32_t dtype; /* a tandem_dtype */
  int32_t rank;
  int64_t shape[TANDEM_MAX_RANK];
  void* data;
  size_t bytes;
  size_t bytes_needed; /* outputs: written by tandem */
} tandem_tensor;

typedef struct tandem_engine_options {
  const char* backends; /* comma-separated order, e.g. "cpu,reference"; NULL: all */
  int32_t threads;      /* 0: backend default */
  const char* cache_dir; /* NULL: none; see EngineOptions::cache_dir (tandem/engine.h) */
} tandem_engine_options;

typedef struct tandem_prepare_options {
  int32_t compute_units;      /* a tandem_compute_units */
  int32_t strict;             /* non-zero: never serve from another backend */
  double latency_sla_ms;      /* 0: none */
  double default_deadline_ms; /* 0: none */
  double parity_sample_rate;  /* 0..1 */
  int32_t output_guard;       /* non-zero: non-finite outputs are device errors */
  const char* fault_injection; /* NULL or a spec such as "error=0.3" */
  const char* name;           /* telemetry label; NULL: from the file name */
  const char* input_shapes;   /* NULL or "x=1x3x48x192;y=1x4" */
  int32_t warmup_runs;        /* -1: default */
} tandem_prepare_options;

typedef struct tandem_infer_options {
  double timeout_ms;                  /* 0: the model's default deadline */
  const tandem_cancel_token* cancel;  /* NULL, or a token another thread may cancel */
} tandem_infer_options;

/* What one request did. */
typedef struct tandem_infer_info {
  char backend[64];          /* the backend that answered */
  int32_t fell_back;         /* non-zero when an earlier backend did not answer */
  int32_t attempts;
  double queue_ms, compute_ms, total_ms;
} tandem_infer_info;

int32_t tandem_api_version(void); /* TANDEM_API_VERSION of the library */
/* TANDEM_ABI_VERSION of the library actually loaded; a program may compare it with the macro
 * it was compiled with. */
int32_t tandem_abi_version(void);
const char* tandem_status_name(tandem_status status); /* "invalid_argument", ... */
/* The message of the calling thread's last failed call ("" if none). */
const char* tandem_last_error(void);

void tandem_engine_options_init(tandem_engine_options* options);
void tandem_prepare_options_init(tandem_prepare_options* options);

tandem_status tandem_engine_create(const tandem_engine_options* options /* NULL: defaults */, tandem_engine** out);
void tandem_engine_destroy(tandem_engine* engine);

tandem_status tandem_prepare_file(tandem_engine* engine, const char* path, const tandem_prepare_options* options,
                                  tandem_model** out);
tandem_status tandem_prepare_bytes(tandem_engine* engine, const void* bytes, size_t size,
                                   const tandem_prepare_options* options, tandem_model** out);
void tandem_model_destroy(tandem_model* model);

size_t tandem_model_input_count(const tandem_model* model);
size_t tandem_model_output_count(const tandem_model* model);
/* Declared name, dtype and dims (-1 for symbolic or unknown dims) of an input or output.
 * `name` points into the model. */
tandem_status tandem_model_input(const tandem_model* model, size_t index, const char** name, int32_t* dtype,
                                 int32_t* rank, int64_t shape[TANDEM_MAX_RANK]);
tandem_status tandem_model_output(const tandem_model* model, size_t index, const char** name, int32_t* dtype,
                                  int32_t* rank, int64_t shape[TANDEM_MAX_RANK]);
/* The cache key (64 hex digits); points into the model. */
const char* tandem_model_cache_key(const tandem_model* model);
/* The SLA estimate measured at warm-up, in ms (0 if it could not be measured). */
double tandem_model_sla_estimate_ms(const tandem_model* model);

tandem_status tandem_cancel_token_create(tandem_cancel_token** out);
void tandem_cancel_token_cancel(tandem_cancel_token* token); /* requests using it stop soon */
void tandem_cancel_token_destroy(tandem_cancel_token* token);

tandem_status tandem_infer(tandem_model* model, const tandem_tensor* inputs, size_t input_count, tandem_tensor* outputs,
                           size_t output_count, const tandem_infer_options* options /* NULL: defaults */,
                           tandem_infer_info* info /* NULL: not wanted */);

/* Telemetry as JSON or Prometheus text into the caller's buffer (NUL-terminated). `needed`
 * (may be NULL) receives the size including the NUL; TANDEM_BUFFER_TOO_SMALL if it is larger
 * than `capacity`. */
tandem_status tandem_model_metrics_json(tandem_model* model, char* buffer, size_t capacity, size_t* needed);
tandem_status tandem_model_metrics_prometheus(tandem_model* model, char* buffer, size_t capacity, size_t* needed);

#ifdef __cplusplus
}
#endif

#endif /* TANDEM_TANDEM_H_ */
