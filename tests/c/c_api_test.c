/* c_api_test.c: the C ABI (tandem/tandem.h) exercised from C: handles, status codes,
 * caller-owned buffers (including the too-small retry), fallback, strict mode, cancellation,
 * telemetry export, and a model outliving its engine. Exits 0 when every check passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/tandem.h"

/* y = Relu(x + w), x float32[batch, 8], w[i] = 0.5 * i - 1 (generated from the C++ test helper). */
static const unsigned char kTinyModel[] = {
    0x08, 0x08, 0x3a, 0x8e, 0x01, 0x0a, 0x13, 0x0a, 0x01, 0x78, 0x0a, 0x01,
    0x77, 0x12, 0x01, 0x73, 0x1a, 0x03, 0x61, 0x64, 0x64, 0x22, 0x03, 0x41,
    0x64, 0x64, 0x0a, 0x12, 0x0a, 0x01, 0x73, 0x12, 0x01, 0x79, 0x1a, 0x04,
    0x72, 0x65, 0x6c, 0x75, 0x22, 0x04, 0x52, 0x65, 0x6c, 0x75, 0x12, 0x04,
    0x74, 0x69, 0x6e, 0x79, 0x2a, 0x29, 0x08, 0x08, 0x10, 0x01, 0x22, 0x20,
    0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0xbf, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f,
    0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x20, 0x40, 0x42, 0x01, 0x77, 0x5a,
    0x18, 0x0a, 0x01, 0x78, 0x12, 0x13, 0x0a, 0x11, 0x08, 0x01, 0x12, 0x0d,
    0x0a, 0x07, 0x12, 0x05, 0x62, 0x61, 0x74, 0x63, 0x68, 0x0a, 0x02, 0x08,
    0x08, 0x62, 0x18, 0x0a, 0x01, 0x79, 0x12, 0x13, 0x0a, 0x11, 0x08, 0x01,
    0x12, 0x0d, 0x0a, 0x07, 0x12, 0x05, 0x62, 0x61, 0x74, 0x63, 0x68, 0x0a,
    0x02, 0x08, 0x08, 0x42, 0x04, 0x0a, 0x00, 0x10, 0x11
};

static int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, tandem_last_error());                         \
      failures++;                                                            \
    }                                                                        \
  } while (0)

static void fill_input(float* x, int batch) {
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < 8; ++i) x[b * 8 + i] = 0.25f * (float)i + (float)b;
}

static float expected(int b, int i) {
  const float s = 0.25f * (float)i + (float)b + 0.5f * (float)i - 1.0f;
  return s > 0 ? s : 0;
}

static tandem_tensor input_tensor(float* x, int batch) {
  tandem_tensor t;
  memset(&t, 0, sizeof t);
  t.name = "x";
  t.dtype = TANDEM_FLOAT32;
  t.rank = 2;
  t.shape[0] = batch;
  t.shape[1] = 8;
  t.data = x;
  t.bytes = sizeof(float) * 8 * (size_t)batch;
  return t;
}

int main(void) {
  CHECK(tandem_api_version() == TANDEM_API_VERSION);
  CHECK(tandem_abi_version() == TANDEM_ABI_VERSION);
  CHECK(strcmp(tandem_status_name(TANDEM_TIMEOUT), "timeout") == 0);
  CHECK(strcmp(tandem_status_name(TANDEM_BUFFER_TOO_SMALL), "buffer_too_small") == 0);

  tandem_engine* engine = NULL;
  tandem_engine_options eo;
  tandem_engine_options_init(&eo);
  eo.backends = "no-such-backend";
  CHECK(tandem_engine_create(&eo, &engine) == TANDEM_INVALID_ARGUMENT);
  CHECK(engine == NULL);
  CHECK(strlen(tandem_last_error()) > 0);
  eo.backends = "reference";
  CHECK(tandem_engine_create(&eo, &engine) == TANDEM_OK);
  if (!engine) return 1;

  tandem_model* bad = NULL;
  CHECK(tandem_prepare_bytes(engine, "junk", 4, NULL, &bad) == TANDEM_INVALID_MODEL);
  CHECK(bad == NULL);

  tandem_prepare_options po;
  tandem_prepare_options_init(&po);
  po.input_shapes = "x=2x8";
  po.fault_injection = "error=0.5,seed=3";
  po.name = "c-tiny";
  tandem_model* model = NULL;
  CHECK(tandem_prepare_bytes(engine, kTinyModel, sizeof kTinyModel, &po, &model) == TANDEM_OK);
  if (!model) return 1;

  /* Schema. */
  CHECK(tandem_model_input_count(model) == 1);
  CHECK(tandem_model_output_count(model) == 1);
  const char* name = NULL;
  int32_t dtype = 0, rank = 0;
  int64_t shape[TANDEM_MAX_RANK];
  CHECK(tandem_model_input(model, 0, &name, &dtype, &rank, shape) == TANDEM_OK);
  CHECK(name && strcmp(name, "x") == 0);
  CHECK(dtype == TANDEM_FLOAT32 && rank == 2 && shape[0] == 2 && shape[1] == 8);
  CHECK(tandem_model_output(model, 0, &name, &dtype, &rank, shape) == TANDEM_OK);
  CHECK(name && strcmp(name, "y") == 0);
  CHECK(tandem_model_input(model, 5, &name, &dtype, &rank, shape) == TANDEM_INVALID_ARGUMENT);
  CHECK(strlen(tandem_model_cache_key(model)) == 64);
  CHECK(tandem_model_sla_estimate_ms(model) > 0);

  /* A too-small output buffer: told the size, then retried. */
  float x[16], y[16];
  fill_input(x, 2);
  tandem_tensor in = input_tensor(x, 2);
  tandem_tensor out;
  memset(&out, 0, sizeof out);
  out.name = "y";
  out.data = y;
  out.bytes = 4;
  CHECK(tandem_infer(model, &in, 1, &out, 1, NULL, NULL) == TANDEM_BUFFER_TOO_SMALL);
  CHECK(out.bytes_needed == sizeof y);
  CHECK(out.rank == 2 && out.shape[0] == 2 && out.shape[1] == 8 && out.dtype == TANDEM_FLOAT32);
  out.bytes = sizeof y;

  /* Many requests: half the first backend's calls fail, the reference answers them. */
  int served_by_reference = 0;
  for (int k = 0; k < 200; ++k) {
    tandem_infer_info info;
    memset(y, 0, sizeof y);
    tandem_status s = tandem_infer(model, &in, 1, &out, 1, NULL, &info);
    CHECK(s == TANDEM_OK);
    if (s != TANDEM_OK) break;
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < 8; ++i) CHECK(fabsf(y[b * 8 + i] - expected(b, i)) == 0.0f);
    CHECK(info.attempts >= 1);
    CHECK(info.total_ms >= info.compute_ms);
    served_by_reference += strcmp(info.backend, "reference") == 0;
    CHECK(strcmp(info.backend, "reference") == 0 || strcmp(info.backend, "faulty(reference)") == 0);
  }
  CHECK(served_by_reference > 0);

  /* Request errors. */
  tandem_tensor wrong = in;
  wrong.bytes = 12;
  CHECK(tandem_infer(model, &wrong, 1, &out, 1, NULL, NULL) == TANDEM_INVALID_ARGUMENT);
  CHECK(strstr(tandem_last_error(), "bytes") != NULL);
  wrong = in;
  wrong.shape[0] = 3;
  float x3[24];
  fill_input(x3, 3);
  wrong.data = x3;
  wrong.bytes = sizeof x3;
  CHECK(tandem_infer(model, &wrong, 1, &out, 1, NULL, NULL) == TANDEM_INVALID_ARGUMENT); /* shape fixed at 2x8 */
  tandem_tensor unnamed_out = out;
  unnamed_out.name = "nope";
  CHECK(tandem_infer(model, &in, 1, &unnamed_out, 1, NULL, NULL) == TANDEM_INVALID_ARGUMENT);

  /* Cancellation. */
  tandem_cancel_token* token = NULL;
  CHECK(tandem_cancel_token_create(&token) == TANDEM_OK);
  tandem_cancel_token_cancel(token);
  tandem_infer_options io = {0, token};
  CHECK(tandem_infer(model, &in, 1, &out, 1, &io, NULL) == TANDEM_CANCELLED);
  tandem_cancel_token_destroy(token);

  /* Telemetry into caller buffers. */
  size_t needed = 0;
  CHECK(tandem_model_metrics_json(model, NULL, 0, &needed) == TANDEM_BUFFER_TOO_SMALL);
  CHECK(needed > 10);
  char* json = (char*)malloc(needed);
  CHECK(tandem_model_metrics_json(model, json, needed, &needed) == TANDEM_OK);
  CHECK(strstr(json, "\"model\": \"c-tiny\"") != NULL);
  CHECK(strstr(json, "\"breaker\"") != NULL);
  free(json);
  CHECK(tandem_model_metrics_prometheus(model, NULL, 0, &needed) == TANDEM_BUFFER_TOO_SMALL);
  char* prom = (char*)malloc(needed);
  CHECK(tandem_model_metrics_prometheus(model, prom, needed, NULL) == TANDEM_OK);
  CHECK(strstr(prom, "tandem_requests_total{model=\"c-tiny\"}") != NULL);
  CHECK(strstr(prom, "tandem_breaker_trips_total{model=\"c-tiny\",backend=\"faulty(reference)\",precision=\"fp32\"}") != NULL);
  free(prom);

  /* Strict mode: the typed error, never another backend. */
  tandem_prepare_options strict;
  tandem_prepare_options_init(&strict);
  strict.input_shapes = "x=2x8";
  strict.fault_injection = "error=1.0";
  strict.strict = 1;
  tandem_model* strict_model = NULL;
  CHECK(tandem_prepare_bytes(engine, kTinyModel, sizeof kTinyModel, &strict, &strict_model) == TANDEM_OK);
  CHECK(tandem_infer(strict_model, &in, 1, &out, 1, NULL, NULL) == TANDEM_DEVICE_ERROR);
  tandem_model_destroy(strict_model);

  tandem_prepare_options ne;
  tandem_prepare_options_init(&ne);
  ne.compute_units = TANDEM_UNITS_CPU_AND_NE;
  tandem_model* ne_model = NULL;
  CHECK(tandem_prepare_bytes(engine, kTinyModel, sizeof kTinyModel, &ne, &ne_model) == TANDEM_UNSUPPORTED);

  /* A model outlives its engine. */
  tandem_engine_destroy(engine);
  CHECK(tandem_infer(model, &in, 1, &out, 1, NULL, NULL) == TANDEM_OK);
  tandem_model_destroy(model);
  tandem_model_destroy(NULL);
  tandem_engine_destroy(NULL);

  if (failures) {
    fprintf(stderr, "c_api_test: %d checks failed\n", failures);
    return 1;
  }
  printf("c_api_test: all checks passed\n");
  return 0;
}
