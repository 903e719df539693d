/* hello_c: loads an ONNX model through tandem's C ABI (tandem/tandem.h), prints its inputs,
 * runs it once on seeded pseudo-random inputs and prints each output's shape and checksum.
 *
 *   hello_c MODEL.onnx [SHAPES [SEED]]
 *
 * SHAPES fixes input shapes at prepare, as in tandem_prepare_options.input_shapes:
 * "x=1x3x48x192;y=1x4" ("-": none); other inputs' symbolic or unknown dims are taken as 1. float32 inputs are filled with values in
 * [0, 1) from a fixed generator (the same as hello_cpp's, so both print the same numbers);
 * inputs of other types are zeros. The checksum is the sum of a float32 output's elements
 * ("first" is its first element). Exit status: 0 on success, 1 on any tandem error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tandem/tandem.h>

static const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case TANDEM_FLOAT32: return "float32";
    case TANDEM_UINT8: return "uint8";
    case TANDEM_INT8: return "int8";
    case TANDEM_UINT16: return "uint16";
    case TANDEM_INT16: return "int16";
    case TANDEM_INT32: return "int32";
    case TANDEM_INT64: return "int64";
    case TANDEM_BOOL: return "bool";
    case TANDEM_FLOAT16: return "float16";
    case TANDEM_FLOAT64: return "float64";
    case TANDEM_UINT32: return "uint32";
    case TANDEM_UINT64: return "uint64";
    case TANDEM_BFLOAT16: return "bfloat16";
    default: return "undefined";
  }
}

static size_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case TANDEM_UINT8: case TANDEM_INT8: case TANDEM_BOOL: return 1;
    case TANDEM_UINT16: case TANDEM_INT16: case TANDEM_FLOAT16: case TANDEM_BFLOAT16: return 2;
    case TANDEM_FLOAT32: case TANDEM_INT32: case TANDEM_UINT32: return 4;
    case TANDEM_INT64: case TANDEM_FLOAT64: case TANDEM_UINT64: return 8;
    default: return 0;
  }
}

static void print_shape(int32_t rank, const int64_t* shape) {
  printf("[");
  for (int32_t d = 0; d < rank; ++d) printf(d ? ",%lld" : "%lld", (long long)shape[d]);
  printf("]");
}

/* A 64-bit linear congruential generator; the top 24 bits give a float in [0, 1). */
static float next_uniform(uint64_t* state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)(*state >> 40) / 16777216.0f;
}

/* Reads the dims of input `name` from SHAPES ("x=1x3x48x192;y=1x4") into shape; returns the
 * rank, or -1 when SHAPES does not name it. */
static int32_t shape_from_spec(const char* spec, const char* name, int64_t shape[TANDEM_MAX_RANK]) {
  size_t len = strlen(name);
  for (const char* p = spec; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
    if (strncmp(p, name, len) != 0 || p[len] != '=') continue;
    const char* q = p + len + 1;
    int32_t rank = 0;
    while (rank < TANDEM_MAX_RANK && *q && *q != ';') {
      char* end = NULL;
      shape[rank++] = strtoll(q, &end, 10);
      q = (*end == 'x') ? end + 1 : end;
      if (end == q && *q != ';' && *q) break; /* not a number */
    }
    return rank;
  }
  return -1;
}

static int fail(const char* what, tandem_status status) {
  fprintf(stderr, "hello_c: %s: %s: %s\n", what, tandem_status_name(status), tandem_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: hello_c MODEL.onnx [SHAPES [SEED]]\n");
    return 2;
  }
  const char* shapes = argc >= 3 && strcmp(argv[2], "-") != 0 ? argv[2] : NULL;
  uint64_t state = argc == 4 ? strtoull(argv[3], NULL, 10) : 42;
  printf("tandem C ABI %d (header %d)\n", (int)tandem_abi_version(), TANDEM_ABI_VERSION);

  tandem_engine* engine = NULL;
  tandem_status st = tandem_engine_create(NULL, &engine);
  if (st != TANDEM_OK) return fail("engine", st);
  tandem_prepare_options po;
  tandem_prepare_options_init(&po);
  po.input_shapes = shapes;
  tandem_model* model = NULL;
  st = tandem_prepare_file(engine, argv[1], &po, &model);
  if (st != TANDEM_OK) {
    tandem_engine_destroy(engine);
    return fail("prepare", st);
  }

  size_t n_in = tandem_model_input_count(model);
  size_t n_out = tandem_model_output_count(model);
  tandem_tensor* inputs = calloc(n_in ? n_in : 1, sizeof(tandem_tensor));
  tandem_tensor* outputs = calloc(n_out ? n_out : 1, sizeof(tandem_tensor));
  int rc = 0;
  for (size_t i = 0; i < n_in && rc == 0; ++i) {
    tandem_tensor* t = &inputs[i];
    st = tandem_model_input(model, i, &t->name, &t->dtype, &t->rank, t->shape);
    if (st != TANDEM_OK) { rc = fail("input", st); break; }
    printf("input %zu: %s %s ", i, t->name, dtype_name(t->dtype));
    print_shape(t->rank, t->shape);
    printf("\n");
    int32_t fixed_rank = shapes ? shape_from_spec(shapes, t->name, t->shape) : -1;
    if (fixed_rank >= 0) t->rank = fixed_rank;
    size_t count = 1;
    for (int32_t d = 0; d < t->rank; ++d) {
      if (t->shape[d] < 0) t->shape[d] = 1;
      count *= (size_t)t->shape[d];
    }
    t->bytes = count * dtype_size(t->dtype);
    t->data = calloc(t->bytes ? t->bytes : 1, 1);
    if (t->dtype == TANDEM_FLOAT32) {
      float* x = t->data;
      for (size_t k = 0; k < count; ++k) x[k] = next_uniform(&state);
    }
  }

  /* First call with empty buffers: tandem answers TANDEM_BUFFER_TOO_SMALL with the sizes. */
  tandem_infer_info info;
  if (rc == 0) {
    st = tandem_infer(model, inputs, n_in, outputs, n_out, NULL, &info);
    if (st == TANDEM_BUFFER_TOO_SMALL) {
      for (size_t i = 0; i < n_out; ++i) {
        outputs[i].bytes = outputs[i].bytes_needed;
        outputs[i].data = malloc(outputs[i].bytes ? outputs[i].bytes : 1);
      }
      st = tandem_infer(model, inputs, n_in, outputs, n_out, NULL, &info);
    }
    if (st != TANDEM_OK) rc = fail("infer", st);
  }
  if (rc == 0) {
    printf("backend: %s\n", info.backend);
    for (size_t i = 0; i < n_out; ++i) {
      const tandem_tensor* t = &outputs[i];
      const char* name = "";
      int32_t dtype = 0, rank = 0;
      int64_t declared[TANDEM_MAX_RANK];
      if (tandem_model_output(model, i, &name, &dtype, &rank, declared) != TANDEM_OK) name = "?";
      printf("output %zu: %s %s ", i, name, dtype_name(t->dtype));
      print_shape(t->rank, t->shape);
      if (t->dtype == TANDEM_FLOAT32) {
        const float* y = t->data;
        size_t count = t->bytes_needed / sizeof(float);
        double sum = 0;
        for (size_t k = 0; k < count; ++k) sum += y[k];
        printf(" checksum=%.6f first=%.6f", sum, count ? (double)y[0] : 0.0);
      }
      printf("\n");
    }
  }

  for (size_t i = 0; i < n_in; ++i) free(inputs[i].data);
  for (size_t i = 0; i < n_out; ++i) free(outputs[i].data);
  free(inputs);
  free(outputs);
  tandem_model_destroy(model);
  tandem_engine_destroy(engine);
  return rc;
}
