/*
 * initlab._trainer: a training step of R stacked plain MLPs, one run at a
 * time per core, for initlab.lab.backprop.
 *
 * Why: batched products over all R runs (torch.bmm) stream every layer's
 * weights and activations of all runs (~40 MB for 32 runs of 10x128) through
 * the caches three times per step, and run ~35 % slower than the same
 * products on hot operands. One run's whole step (its weights, its kept
 * activations and two delta buffers: ~1.4 MB for 10x128 at batch 128) fits
 * in one core's L2, so here each thread takes the next run and does its
 * forward pass, loss, backward pass and update for every step of the call
 * (the trainer passes all steps up to its next log) before taking another:
 * the run's weights stay in that core's cache from one step to the next,
 * and the threads meet once per call, not once per step. They never share a
 * run. The matrix products are the single-threaded
 * sgemm of the BLAS that torch ships (Intel MKL on x86-64 Linux), found with
 * bind_blas() in torch's already-loaded library; the activation, its
 * derivative, the bias and the loss are fused loops here (vectorised for
 * AVX-512F when the CPU has it, chosen at import; the environment variable
 * INITLAB_KERNELS_PORTABLE keeps the baseline, as for initlab._kernels).
 *
 * Formulas per run (row-major, a batch of B rows; Rumelhart, Hinton &
 * Williams 1986): z_l = h_{l-1} W_l^T + b_l, h_l = phi(z_l) (no phi on the
 * top layer); the loss is the batch mean of the cross-entropy (labels) or the
 * mean squared error (targets); delta = dL/dz from the top down, with
 * dL/dh_{l-1} = delta_l W_l taken before W_l changes. Plain SGD folds the
 * update into the gradient product: W_l <- f_W W_l - lr delta_l^T h_{l-1}
 * (one sgemm with beta = f_W, the L2/decay shrink factor) and
 * b_l <- f_b b_l - lr 1^T delta_l. Momentum and Adam take the gradient
 * g = delta_l^T h_{l-1} (+ l2 W), decay W <- f W, and update as torch's
 * SGD(momentum) (v <- mu v + g, W <- W - lr v) and Adam (m <- b1 m + (1 - b1) g,
 * v <- b2 v + (1 - b2) g^2, W <- W - (lr / c1) m / (sqrt(v) / c2 + eps), with
 * the bias corrections c1 = 1 - b1^t, c2 = sqrt(1 - b2^t)).
 *
 * tanh and sigmoid are computed here, not by libm: tanh(x) for |x| < 0.625 by
 * an odd polynomial fitted here (least squares in Chebyshev form; under 0.8
 * ulp in float32 on that interval), else by 1 - 2 / (exp(2|x|) + 1) with
 * the sign of x; exp by exp(y) = 2^n exp(r), n = round(y / ln 2), the
 * degree-7 Taylor polynomial of exp(r) on |r| <= ln(2)/2 (truncation < 1e-8
 * relative). Both within a few ulp of the exact value (tests compare them
 * with float64 torch).
 *
 * Every buffer is checked (format, dimensions, shapes) before the GIL is
 * released, so a wrong call raises TypeError or ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#include <pthread.h>
#define INITLAB_HAVE_THREADS_AND_DLOPEN 1
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define INITLAB_HAVE_AVX512_DISPATCH 1
#endif

#define MAX_THREADS 64
#define MAX_LAYERS 1024

/* ------------------------------------------------------------------ BLAS */

/* Fortran-convention sgemm (column-major): C <- alpha op(A) op(B) + beta C. */
typedef void (*sgemm_function)(const char *, const char *, const int *, const int *, const int *,
                               const float *, const float *, const int *, const float *, const int *,
                               const float *, float *, const int *);
/* MKL's per-thread thread count (C convention); returns the previous one. */
typedef int (*local_threads_function)(int);

static sgemm_function sgemm;
static local_threads_function set_local_threads;

/*
 * Row-major C (rows x cols) <- alpha op(A) op(B) + beta C, op transposing A
 * (B) when transpose_a (transpose_b); inner is the shared dimension and the
 * ld* are the row lengths of the stored matrices.
 */
static void
row_major_gemm(int transpose_a, int transpose_b, int rows, int cols, int inner, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    /* row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T */
    const char *op_b = transpose_b ? "T" : "N";
    const char *op_a = transpose_a ? "T" : "N";
    sgemm(op_b, op_a, &cols, &rows, &inner, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

/* ------------------------------------------------------------------ elementwise */

enum activation_kind { ACT_LINEAR, ACT_TANH, ACT_SIGMOID, ACT_RELU, ACT_LEAKY_RELU };
enum task_kind { TASK_CLASSIFICATION, TASK_REGRESSION };
enum optimizer_kind { OPT_SGD, OPT_MOMENTUM, OPT_ADAM };

/*
 * Columns of the per-run hyper-parameters (runs, HYPER_COLUMNS). SGD: the
 * factors are 1 - lr (l2 + weight_decay) (1 for unregularised biases) and
 * the l2 columns are unused. Momentum and Adam: the factors are
 * 1 - lr weight_decay and the l2 columns hold l2 (0 for unregularised
 * biases); BETA1 is the momentum for momentum.
 */
enum hyper_column {
    H_LR, H_WEIGHT_FACTOR, H_BIAS_FACTOR, H_WEIGHT_L2, H_BIAS_L2, H_BETA1, H_BETA2, H_EPS, HYPER_COLUMNS
};

/* Adam's step size lr / (1 - beta1^t) and sqrt(1 - beta2^t) at step t (1, 2, ...). */
typedef struct {
    float step, root;
} corrections;

static corrections
adam_corrections(const float *h, long long t)
{
    corrections c;
    c.step = (float)((double)h[H_LR] / (1.0 - pow((double)h[H_BETA1], (double)t)));
    c.root = (float)sqrt(1.0 - pow((double)h[H_BETA2], (double)t));
    return c;
}

/*
 * exp(y) for y in [-104, 88] (2^n exp(r); see the top of the file). 2^n is
 * applied as two factors 2^(n/2) 2^(n - n/2), each a normal float, so results
 * below FLT_MIN round once, to the subnormal they are.
 */
static inline float
exp_bounded(float y)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float shifted = y * 1.44269504088896341f + shifter;
    float n = shifted - shifter;
    float r = (y - n * 0.693359375f) - n * -2.12194440e-4f; /* ln 2 split in two parts */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    int32_t power = bits - 0x4B400000, half = power >> 1;
    int32_t first = (half + 127) << 23, second = (power - half + 127) << 23;
    float scale_first, scale_second;
    memcpy(&scale_first, &first, sizeof scale_first);
    memcpy(&scale_second, &second, sizeof scale_second);
    return (p * scale_first) * scale_second;
}

static inline float
tanh_float(float x)
{
    float a = fabsf(x);
    float u = a * a;
    float q = 0.002339352387934923f;
    q = q * u - 0.008386143483221531f;
    q = q * u + 0.02178216725587845f;
    q = q * u - 0.05396093800663948f;
    q = q * u + 0.13333310186862946f;
    q = q * u - 0.3333333432674408f;
    float small = a + a * u * q;
    float e = exp_bounded(2.0f * (a > 9.0f ? 9.0f : a)); /* a NaN stays NaN */
    float large = 1.0f - 2.0f / (e + 1.0f);
    return copysignf(a < 0.625f ? small : large, x);
}

/* tanh in place over `count` values (the loop the portable build uses). */
static void
tanh_portable(float *values, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        values[i] = tanh_float(values[i]);
    }
}

#ifdef INITLAB_HAVE_AVX512_DISPATCH
/*
 * tanh_float's formulas on 16 lanes, with 1 / (e + 1) as the AVX-512 reciprocal
 * estimate (14 bits) refined by one Newton step in residual form,
 * r + r (1 - d r) (28 bits, one rounding), instead of a division, whose
 * throughput made tanh ~11 % of a training step of 10x128 tanh MLPs.
 * min(9, a) keeps a NaN (x86's min returns its second operand).
 */
__attribute__((target("avx512f"))) static void
tanh_avx512(float *values, size_t count)
{
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f), nine = _mm512_set1_ps(9.0f);
    const __m512 threshold = _mm512_set1_ps(0.625f), shifter = _mm512_set1_ps(12582912.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (size_t i = 0; i < count; i += 16) {
        size_t left = count - i;
        __mmask16 lanes = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(lanes, values + i);
        __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
        __m512 u = _mm512_mul_ps(a, a);
        __m512 q = _mm512_set1_ps(0.002339352387934923f);
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.008386143483221531f));
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.02178216725587845f));
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.05396093800663948f));
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(0.13333310186862946f));
        q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-0.3333333432674408f));
        __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(a, u), q, a);
        __m512 y = _mm512_mul_ps(two, _mm512_min_ps(nine, a));
        __m512 shifted = _mm512_fmadd_ps(y, _mm512_set1_ps(1.44269504088896341f), shifter);
        __m512 n = _mm512_sub_ps(shifted, shifter);
        __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), y);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(p, r, one);
        p = _mm512_fmadd_ps(p, r, one);
        __m512i power = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000 - 127));
        __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(power, 23)));
        __m512 d = _mm512_add_ps(e, one);
        __m512 inverse = _mm512_rcp14_ps(d);
        inverse = _mm512_fmadd_ps(inverse, _mm512_fnmadd_ps(d, inverse, one), inverse); /* r + r (1 - d r) */
        __m512 large = _mm512_fnmadd_ps(two, inverse, one);
        __m512 result = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, threshold, _CMP_LT_OQ), large, small);
        result = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(result),
                                                     _mm512_and_si512(sign, _mm512_castps_si512(x))));
        _mm512_mask_storeu_ps(values + i, lanes, result);
    }
}
#endif

/* tanh in place: tanh_avx512 when the AVX-512 loops are chosen (choose_implementation). */
static void (*tanh_in_place)(float *, size_t) = tanh_portable;

/* 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|): no overflow, subnormal tails kept. */
static inline float
sigmoid_float(float x)
{
    float y = -fabsf(x);
    y = y < -104.0f ? -104.0f : y; /* a comparison, not fmaxf: a NaN stays NaN */
    float e = exp_bounded(y);
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

/* z[i, j] += bias[j] (when bias) and then phi in place, for `rows` rows of `cols`. */
static inline __attribute__((always_inline)) void
bias_and_activation(float *restrict z, const float *restrict bias, int rows, int cols, int kind,
                    float slope)
{
    for (int i = 0; i < rows; i++) {
        float *restrict row = z + (size_t)i * cols;
        if (bias != NULL) {
            for (int j = 0; j < cols; j++) {
                row[j] += bias[j];
            }
        }
        switch (kind) {
        case ACT_TANH:
            tanh_in_place(row, (size_t)cols);
            break;
        case ACT_SIGMOID:
            for (int j = 0; j < cols; j++) {
                row[j] = sigmoid_float(row[j]);
            }
            break;
        case ACT_RELU:
            for (int j = 0; j < cols; j++) {
                row[j] = row[j] < 0.0f ? 0.0f : row[j];
            }
            break;
        case ACT_LEAKY_RELU:
            for (int j = 0; j < cols; j++) {
                row[j] = row[j] < 0.0f ? row[j] * slope : row[j];
            }
            break;
        default:
            break;
        }
    }
}

/* grad <- grad * phi'(z), phi' read off the output h = phi(z) (slope > 0 for leaky relu). */
static inline __attribute__((always_inline)) void
times_derivative(float *restrict grad, const float *restrict h, size_t count, int kind, float slope)
{
    switch (kind) {
    case ACT_TANH:
        for (size_t i = 0; i < count; i++) {
            grad[i] *= 1.0f - h[i] * h[i];
        }
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < count; i++) {
            grad[i] *= h[i] * (1.0f - h[i]);
        }
        break;
    case ACT_RELU:
        for (size_t i = 0; i < count; i++) {
            grad[i] = h[i] > 0.0f ? grad[i] : 0.0f;
        }
        break;
    case ACT_LEAKY_RELU:
        for (size_t i = 0; i < count; i++) {
            grad[i] = h[i] > 0.0f ? grad[i] : grad[i] * slope;
        }
        break;
    default:
        break;
    }
}

/* The column sums of delta (rows x cols) into sums. */
static inline __attribute__((always_inline)) void
column_sums(const float *restrict delta, int rows, int cols, float *restrict sums)
{
    memcpy(sums, delta, sizeof(float) * (size_t)cols);
    for (int i = 1; i < rows; i++) {
        const float *restrict row = delta + (size_t)i * cols;
        for (int j = 0; j < cols; j++) {
            sums[j] += row[j];
        }
    }
}

/*
 * One momentum or Adam update of `count` parameters from their gradient
 * `grad` (see the top of the file); `first`, `second` are the optimiser's
 * state (second unused by momentum); h is the run's row of hyper-parameters,
 * c Adam's corrections at this step and `factor`, `l2` the columns for this
 * kind of parameter.
 */
static inline __attribute__((always_inline)) void
stateful_update(int optimizer, float *restrict param, const float *restrict grad, float *restrict first,
                float *restrict second, size_t count, const float *h, corrections c, float factor, float l2)
{
    float lr = h[H_LR], beta1 = h[H_BETA1];
    if (optimizer == OPT_MOMENTUM) {
        for (size_t i = 0; i < count; i++) {
            float g = grad[i] + l2 * param[i];
            first[i] = beta1 * first[i] + g;
            param[i] = factor * param[i] - lr * first[i];
        }
        return;
    }
    float beta2 = h[H_BETA2], eps = h[H_EPS], step = c.step, root = c.root;
    for (size_t i = 0; i < count; i++) {
        float g = grad[i] + l2 * param[i];
        first[i] = beta1 * first[i] + (1.0f - beta1) * g;
        second[i] = beta2 * second[i] + (1.0f - beta2) * (g * g);
        param[i] = factor * param[i] - step * first[i] / (sqrtf(second[i]) / root + eps);
    }
}

/*
 * Mean cross-entropy of the logits' rows (rows x classes) against the labels
 * of the examples `picks`; the logits become dL/dlogits = (softmax - onehot) / rows.
 */
static float
cross_entropy_and_delta(float *logits, const int64_t *labels, const int64_t *picks, int rows, int classes)
{
    double total = 0.0;
    for (int i = 0; i < rows; i++) {
        float *row = logits + (size_t)i * classes;
        int64_t label = labels[picks[i]];
        float top = row[0];
        for (int j = 1; j < classes; j++) {
            top = row[j] > top ? row[j] : top;
        }
        float picked = row[label] - top;
        float sum = 0.0f;
        for (int j = 0; j < classes; j++) {
            row[j] = expf(row[j] - top);
            sum += row[j];
        }
        total += (double)(logf(sum) - picked);
        float scale = 1.0f / (sum * (float)rows);
        for (int j = 0; j < classes; j++) {
            row[j] *= scale;
        }
        row[label] -= 1.0f / (float)rows;
    }
    return (float)(total / rows);
}

/*
 * Mean squared error of the outputs (rows x width) against the targets of the
 * examples `picks`; the outputs become dL/doutputs.
 */
static float
squared_error_and_delta(float *outputs, const float *targets, const int64_t *picks, int rows, int width)
{
    double total = 0.0;
    float scale = 2.0f / ((float)rows * (float)width);
    for (int i = 0; i < rows; i++) {
        float *row = outputs + (size_t)i * width;
        const float *target = targets + (size_t)picks[i] * width;
        for (int j = 0; j < width; j++) {
            float difference = row[j] - target[j];
            total += (double)difference * difference;
            row[j] = difference * scale;
        }
    }
    return (float)(total / ((double)rows * width));
}

/* ------------------------------------------------------------------ plans */

typedef struct {
    int layers, batch, runs, kind, task, training;
    float slope;
    const int *widths;        /* widths[0] inputs, widths[l + 1] outputs of layer l */
    float **weights;          /* layer l: (runs, widths[l + 1], widths[l]) */
    float **biases;           /* layer l: (runs, widths[l + 1]) or NULL */
    const float *x;           /* training: the examples (count, widths[0]); forward: (runs, batch,
                                 widths[0]), or (1, batch, widths[0]) shared */
    Py_ssize_t x_stride;      /* forward: floats from one run's inputs to the next (0: shared) */
    const int64_t *rows;      /* training: (runs, steps, batch), run r's batch at step k is examples rows[r, k] */
    int steps;                /* training: steps per call */
    long long first_step;     /* training: the optimiser's step count before the call */
    const int64_t *labels;    /* classification: (count) */
    const float *targets;     /* regression: (count, widths[layers]) */
    int optimizer;
    const float *hyper;       /* training: (runs, HYPER_COLUMNS) */
    float **state[2][2];      /* state[k][0]: weights' k-th optimiser state per layer, [k][1] biases' */
    float *losses;            /* training: (runs, steps) */
    float *outputs;           /* forward only: (runs, batch, widths[layers]) */
    float *scratch;           /* (threads, scratch_stride) */
    Py_ssize_t scratch_stride;
    int next_run;             /* taken atomically by the threads */
} plan;

static int
widest_hidden(const int *widths, int layers)
{
    int widest = 1;
    for (int l = 1; l < layers; l++) {
        widest = widths[l] > widest ? widths[l] : widest;
    }
    return widest;
}

/* `floats` rounded up to a multiple of 16 (64 bytes). */
static inline size_t
padded(size_t floats)
{
    return (floats + 15) & ~(size_t)15;
}

/* Where a training thread's buffers lie in its scratch (see scratch_layout). */
typedef struct {
    float *input;            /* the run's batch of examples */
    float *kept[MAX_LAYERS]; /* kept[l]: layer l's output (the top one becomes the first delta) */
    float *grad[2];          /* dL/dh of a hidden layer, alternately */
    float *sums;             /* column sums of a delta */
    float *weight_grad;      /* a layer's dL/dW (momentum and Adam) */
} buffers;

/*
 * Lay out one thread's scratch from `base` (NULL: only count) and return its
 * size in floats. Training gathers the run's batch and keeps every layer's
 * output, two buffers of dL/dh, the column sums and one weight gradient; a
 * forward pass alternates two buffers of the widest
 * hidden layer. Every buffer starts 64-byte aligned (when base is), so the
 * BLAS sees the same alignment whichever thread takes a run: results do not
 * depend on the thread count.
 */
static size_t
scratch_layout(const int *widths, int layers, int batch, int training, float *base, buffers *b)
{
    size_t widest = padded((size_t)batch * widest_hidden(widths, layers));
    if (!training) {
        return 2 * widest;
    }
    size_t offset = padded((size_t)batch * widths[0]);
    if (base != NULL) {
        b->input = base;
    }
    for (int l = 0; l < layers; l++) {
        if (base != NULL) {
            b->kept[l] = base + offset;
        }
        offset += padded((size_t)batch * widths[l + 1]);
    }
    size_t sums = padded((size_t)widest_hidden(widths, layers + 1)), largest = 0;
    for (int l = 0; l < layers; l++) {
        size_t size = (size_t)widths[l] * widths[l + 1];
        largest = size > largest ? size : largest;
    }
    if (base != NULL) {
        b->grad[0] = base + offset;
        b->grad[1] = base + offset + widest;
        b->sums = base + offset + 2 * widest;
        b->weight_grad = b->sums + sums;
    }
    return offset + 2 * widest + sums + padded(largest);
}

static inline __attribute__((always_inline)) float *
weight_of(const plan *p, int layer, int run)
{
    return p->weights[layer] + (size_t)run * p->widths[layer + 1] * p->widths[layer];
}

static inline __attribute__((always_inline)) float *
bias_of(const plan *p, int layer, int run)
{
    return p->biases[layer] == NULL ? NULL : p->biases[layer] + (size_t)run * p->widths[layer + 1];
}

/* z <- h W^T + b, then phi unless it is the top layer. */
static inline __attribute__((always_inline)) void
layer_forward(const plan *p, int layer, int run, const float *h, float *z)
{
    int in = p->widths[layer], out = p->widths[layer + 1];
    row_major_gemm(0, 1, p->batch, out, in, 1.0f, h, in, weight_of(p, layer, run), in, 0.0f, z, out);
    bias_and_activation(z, bias_of(p, layer, run), p->batch, out,
                        layer == p->layers - 1 ? ACT_LINEAR : p->kind, p->slope);
}

/* One run's forward pass into its rows of p->outputs. */
static inline __attribute__((always_inline)) void
forward_run(const plan *p, int run, float *scratch)
{
    size_t half = padded((size_t)p->batch * widest_hidden(p->widths, p->layers));
    const float *h = p->x + (size_t)run * p->x_stride;
    for (int l = 0; l < p->layers; l++) {
        float *z = l == p->layers - 1
            ? p->outputs + (size_t)run * p->batch * p->widths[p->layers]
            : scratch + (l % 2) * half;
        layer_forward(p, l, run, h, z);
        h = z;
    }
}

/* One step of one run: forward pass on the batch `picks`, loss, and (lr > 0, finite loss) backward and update. */
static inline __attribute__((always_inline)) float
train_step_of_run(const plan *p, int run, const int64_t *picks, const buffers *b, const float *h, corrections c)
{
    int layers = p->layers, batch = p->batch, top = p->widths[layers];
    float *const *kept = b->kept;
    float *input = b->input;
    for (int i = 0; i < batch; i++) {
        memcpy(input + (size_t)i * p->widths[0], p->x + (size_t)picks[i] * p->widths[0],
               sizeof(float) * (size_t)p->widths[0]);
    }
    for (int l = 0; l < layers; l++) {
        layer_forward(p, l, run, l == 0 ? input : kept[l - 1], kept[l]);
    }
    float *delta = kept[layers - 1];
    float loss = p->task == TASK_CLASSIFICATION
        ? cross_entropy_and_delta(delta, p->labels, picks, batch, top)
        : squared_error_and_delta(delta, p->targets, picks, batch, top);
    float lr = h[H_LR];
    if (!isfinite(loss)) {
        return loss;
    }
    for (int l = layers - 1; l >= 0; l--) {
        int in = p->widths[l], out = p->widths[l + 1];
        const float *below = l == 0 ? input : kept[l - 1];
        float *weight = weight_of(p, l, run), *bias = bias_of(p, l, run);
        float *next = b->grad[l % 2];
        if (l > 0) { /* dL/dh_{l-1} = delta W, with the weights before their update */
            row_major_gemm(0, 0, batch, in, out, 1.0f, delta, out, weight, in, 0.0f, next, in);
        }
        if (p->optimizer == OPT_SGD) {
            row_major_gemm(1, 0, out, in, batch, -lr, delta, out, below, in, h[H_WEIGHT_FACTOR], weight, in);
        } else {
            size_t at = (size_t)run * out * in;
            row_major_gemm(1, 0, out, in, batch, 1.0f, delta, out, below, in, 0.0f, b->weight_grad, in);
            stateful_update(p->optimizer, weight, b->weight_grad, p->state[0][0][l] + at,
                            p->optimizer == OPT_ADAM ? p->state[1][0][l] + at : NULL, (size_t)out * in, h, c,
                            h[H_WEIGHT_FACTOR], h[H_WEIGHT_L2]);
        }
        if (bias != NULL) {
            column_sums(delta, batch, out, b->sums);
            if (p->optimizer == OPT_SGD) {
                for (int j = 0; j < out; j++) {
                    bias[j] = h[H_BIAS_FACTOR] * bias[j] - lr * b->sums[j];
                }
            } else {
                size_t at = (size_t)run * out;
                stateful_update(p->optimizer, bias, b->sums, p->state[0][1][l] + at,
                                p->optimizer == OPT_ADAM ? p->state[1][1][l] + at : NULL, (size_t)out, h, c,
                                h[H_BIAS_FACTOR], h[H_BIAS_L2]);
            }
        }
        if (l > 0) {
            times_derivative(next, below, (size_t)batch * in, p->kind, p->slope);
            delta = next;
        }
    }
    return loss;
}

/*
 * All of one run's steps, back to back (its weights stay in this core's
 * cache from one step to the next). A stopped run (lr 0) is skipped, its
 * losses reported as 0; a run whose loss is not finite stops there: that
 * step's update is not made and its later losses are NaN.
 */
static inline __attribute__((always_inline)) void
train_run(const plan *p, int run, float *scratch)
{
    buffers b;
    scratch_layout(p->widths, p->layers, p->batch, 1, scratch, &b);
    const float *h = p->hyper + (size_t)run * HYPER_COLUMNS;
    float *losses = p->losses + (size_t)run * p->steps;
    for (int k = 0; k < p->steps; k++) {
        if (h[H_LR] == 0.0f) {
            losses[k] = 0.0f;
            continue;
        }
        corrections c = {0.0f, 1.0f};
        if (p->optimizer == OPT_ADAM) {
            c = adam_corrections(h, p->first_step + k + 1);
        }
        const int64_t *picks = p->rows + ((size_t)run * p->steps + k) * p->batch;
        losses[k] = train_step_of_run(p, run, picks, &b, h, c);
        if (!isfinite(losses[k])) {
            for (k++; k < p->steps; k++) {
                losses[k] = NAN;
            }
        }
    }
}

/* Take runs until none is left; compiled once per target below (the loops inline into each). */
static inline __attribute__((always_inline)) void
work(plan *p, float *scratch)
{
    int run;
    while ((run = __atomic_fetch_add(&p->next_run, 1, __ATOMIC_RELAXED)) < p->runs) {
        if (p->training) {
            train_run(p, run, scratch);
        } else {
            forward_run(p, run, scratch);
        }
    }
}

static void
work_portable(plan *p, float *scratch)
{
    work(p, scratch);
}

#ifdef INITLAB_HAVE_AVX512_DISPATCH
__attribute__((target("avx512f,avx2,fma"))) static void
work_avx512(plan *p, float *scratch)
{
    work(p, scratch);
}
#endif

typedef void (*work_function)(plan *, float *);
static work_function work_in_use = work_portable;
static const char *work_in_use_name = "portable";

typedef struct {
    plan *p;
    float *scratch;
} worker;

/* A thread's share: MKL single-threaded on this thread, runs taken until none is left. */
static void *
work_thread(void *argument)
{
    worker *w = argument;
    int previous = set_local_threads(1);
    work_in_use(w->p, w->scratch);
    set_local_threads(previous);
    return NULL;
}

/*
 * Run the plan on `threads` threads, the calling one included. Should a
 * thread fail to start, the others take its runs (they share one counter).
 */
static void
run_plan(plan *p, int threads)
{
    worker workers[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        workers[t].p = p;
        workers[t].scratch = p->scratch + (size_t)t * p->scratch_stride;
    }
#ifdef INITLAB_HAVE_THREADS_AND_DLOPEN
    pthread_t handles[MAX_THREADS];
    int started = 1;
    while (started < threads && pthread_create(&handles[started], NULL, work_thread, &workers[started]) == 0) {
        started++;
    }
    work_thread(&workers[0]);
    for (int t = 1; t < started; t++) {
        pthread_join(handles[t], NULL);
    }
#else
    work_in_use(p, workers[0].scratch); /* not reached: bind_blas() binds nothing here */
#endif
}

/* ------------------------------------------------------------------ arguments */

/* `object` as a C-contiguous buffer of `ndim` dimensions of float32 ('f') or int64 ('q'). */
static int
get_array(PyObject *object, Py_buffer *view, char kind, int ndim, int writable, const char *argument)
{
    int flags = PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    const char *expected = kind == 'f' ? "float32" : "int64";
    if (PyObject_GetBuffer(object, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be a %s C-contiguous %s array, got %.100s", argument,
                     writable ? "writable" : "readable", expected, Py_TYPE(object)->tp_name);
        return -1;
    }
    const char *format = view->format == NULL ? "B" : view->format;
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') {
        format++;
    }
    int ok = view->ndim == ndim && format[0] != '\0' && format[1] == '\0' &&
             (kind == 'f' ? (format[0] == 'f' && view->itemsize == 4)
                          : ((format[0] == 'l' || format[0] == 'q') && view->itemsize == 8));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a %d-dimensional %s array, got format '%s' with %d dimension(s)",
                     argument, ndim, expected, view->format == NULL ? "B" : view->format, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ValueError unless every one of the `total` row indices lies in [0, count). */
static int
check_rows(const int64_t *rows, Py_ssize_t total, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < total; i++) {
        if (rows[i] < 0 || rows[i] >= count) {
            PyErr_Format(PyExc_ValueError, "rows holds %lld at position %zd; expected 0 to %zd (x has %zd rows)",
                         (long long)rows[i], i, count - 1, count);
            return -1;
        }
    }
    return 0;
}

/* ValueError unless view's shape equals `shape` (ndim entries). */
static int
check_shape(const Py_buffer *view, const Py_ssize_t *shape, const char *argument)
{
    for (int d = 0; d < view->ndim; d++) {
        if (view->shape[d] != shape[d]) {
            PyErr_Format(PyExc_ValueError, "%s has size %zd in dimension %d; expected %zd", argument,
                         view->shape[d], d, shape[d]);
            return -1;
        }
    }
    return 0;
}

/* The index of `name` in `names` (count entries), or ValueError naming the argument. */
static int
choice(const char *name, const char *const *names, int count, const char *argument, const char *expected)
{
    for (int k = 0; k < count; k++) {
        if (strcmp(name, names[k]) == 0) {
            return k;
        }
    }
    PyErr_Format(PyExc_ValueError, "%s='%.100s' is not supported; expected %s", argument, name, expected);
    return -1;
}

/* All buffers a call holds (at most two per layer and eight more), released together. */
typedef struct {
    Py_buffer *views;
    int count;
} held;

/* Room for every buffer of a call; MemoryError and -1 on failure. */
static int
hold_start(held *h)
{
    h->count = 0;
    h->views = PyMem_Calloc(2 * MAX_LAYERS + 8, sizeof(Py_buffer));
    if (h->views == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
release_all(held *h)
{
    for (int i = 0; i < h->count; i++) {
        PyBuffer_Release(&h->views[i]);
    }
    PyMem_Free(h->views);
    h->views = NULL;
    h->count = 0;
}

/* Take an array into `h` (counted only on success). */
static int
take(held *h, PyObject *object, char kind, int ndim, int writable, const char *argument, const Py_ssize_t *shape)
{
    Py_buffer *view = &h->views[h->count];
    if (get_array(object, view, kind, ndim, writable, argument) < 0) {
        return -1;
    }
    h->count++;
    return shape == NULL ? 0 : check_shape(view, shape, argument);
}

/*
 * Fill the layer part of `p` from the weights list and biases (list or None):
 * widths from the weights' shapes (each layer's input = the previous output).
 */
static int
take_layers(held *h, plan *p, int *widths, PyObject *weights, PyObject *biases, int runs)
{
    if (!PyList_Check(weights) || PyList_GET_SIZE(weights) < 1 || PyList_GET_SIZE(weights) > MAX_LAYERS) {
        PyErr_Format(PyExc_TypeError, "weights must be a list of 1 to %d arrays", MAX_LAYERS);
        return -1;
    }
    int layers = (int)PyList_GET_SIZE(weights);
    if (biases != Py_None && (!PyList_Check(biases) || PyList_GET_SIZE(biases) != layers)) {
        PyErr_Format(PyExc_TypeError, "biases must be None or a list of %d arrays (one per weight)", layers);
        return -1;
    }
    char argument[64];
    for (int l = 0; l < layers; l++) {
        snprintf(argument, sizeof argument, "weights[%d]", l);
        if (take(h, PyList_GET_ITEM(weights, l), 'f', 3, 1, argument, NULL) < 0) {
            return -1;
        }
        const Py_buffer *view = &h->views[h->count - 1];
        if (view->shape[0] != runs || view->shape[1] < 1 || view->shape[1] > INT32_MAX / 4 ||
            (l == 0 && (view->shape[2] < 1 || view->shape[2] > INT32_MAX / 4)) ||
            (l > 0 && view->shape[2] != widths[l])) {
            PyErr_Format(PyExc_ValueError, "%s has shape (%zd, %zd, %zd); expected (%d, outputs, %s)", argument,
                         view->shape[0], view->shape[1], view->shape[2], runs,
                         l == 0 ? "inputs" : "the previous layer's outputs");
            return -1;
        }
        if (l == 0) {
            widths[0] = (int)view->shape[2];
        }
        widths[l + 1] = (int)view->shape[1];
        p->weights[l] = view->buf;
        p->biases[l] = NULL;
        if (biases != Py_None) {
            snprintf(argument, sizeof argument, "biases[%d]", l);
            Py_ssize_t shape[2] = {runs, widths[l + 1]};
            if (take(h, PyList_GET_ITEM(biases, l), 'f', 2, 1, argument, shape) < 0) {
                return -1;
            }
            p->biases[l] = h->views[h->count - 1].buf;
        }
    }
    p->layers = layers;
    p->widths = widths;
    return 0;
}

/*
 * The optimiser's state arrays: `states` lists p->optimizer's number of
 * states (momentum 1, Adam 2), each a list of one array per weight (shaped as
 * it) followed, with biases, by one per bias.
 */
static int
take_states(held *h, plan *p, PyObject *states, float *pointers[2][2][MAX_LAYERS], int with_biases)
{
    int wanted = p->optimizer == OPT_ADAM ? 2 : (p->optimizer == OPT_MOMENTUM ? 1 : 0);
    int per_state = p->layers * (with_biases ? 2 : 1);
    if (!PyList_Check(states) || PyList_GET_SIZE(states) != wanted) {
        PyErr_Format(PyExc_TypeError, "states must be a list of %d list(s) for this optimizer", wanted);
        return -1;
    }
    char argument[64];
    for (int k = 0; k < wanted; k++) {
        PyObject *arrays = PyList_GET_ITEM(states, k);
        if (!PyList_Check(arrays) || PyList_GET_SIZE(arrays) != per_state) {
            PyErr_Format(PyExc_TypeError, "states[%d] must be a list of %d arrays (one per weight%s)", k, per_state,
                         with_biases ? ", then one per bias" : "");
            return -1;
        }
        for (int i = 0; i < per_state; i++) {
            int bias = i >= p->layers, l = bias ? i - p->layers : i;
            Py_ssize_t shape[3] = {p->runs, p->widths[l + 1], p->widths[l]}; /* a bias: the first two */
            snprintf(argument, sizeof argument, "states[%d][%d]", k, i);
            if (take(h, PyList_GET_ITEM(arrays, i), 'f', bias ? 2 : 3, 1, argument, shape) < 0) {
                return -1;
            }
            pointers[k][bias][l] = h->views[h->count - 1].buf;
        }
        p->state[k][0] = pointers[k][0];
        p->state[k][1] = pointers[k][1];
    }
    return 0;
}

static int
take_options(plan *p, const char *activation, double slope, int threads)
{
    static const char *const names[] = {"linear", "tanh", "sigmoid", "relu", "leaky_relu"};
    p->kind = choice(activation, names, 5, "activation",
                     "'linear', 'tanh', 'sigmoid', 'relu' or 'leaky_relu'");
    if (p->kind < 0) {
        return -1;
    }
    if (p->kind == ACT_LEAKY_RELU && !(slope > 0.0)) {
        PyObject *shown = PyFloat_FromDouble(slope);
        if (shown != NULL) {
            PyErr_Format(PyExc_ValueError, "slope=%R is invalid for leaky_relu; expected a positive slope", shown);
            Py_DECREF(shown);
        }
        return -1;
    }
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads=%d is invalid; expected 1 to %d", threads, MAX_THREADS);
        return -1;
    }
    if (sgemm == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no BLAS bound: call bind_blas() first (and check it returned True)");
        return -1;
    }
    p->slope = (float)slope;
    return 0;
}

/* The scratch argument: (threads, n) float32 with n at least what one thread needs. */
static int
take_scratch(held *h, plan *p, PyObject *scratch, int threads)
{
    if (take(h, scratch, 'f', 2, 1, "scratch", NULL) < 0) {
        return -1;
    }
    const Py_buffer *view = &h->views[h->count - 1];
    Py_ssize_t needed = (Py_ssize_t)scratch_layout(p->widths, p->layers, p->batch, p->training, NULL, NULL);
    if (view->shape[0] < threads || view->shape[1] < needed) {
        PyErr_Format(PyExc_ValueError, "scratch has shape (%zd, %zd); expected at least (%d, %zd)",
                     view->shape[0], view->shape[1], threads, needed);
        return -1;
    }
    p->scratch = view->buf;
    p->scratch_stride = view->shape[1];
    return 0;
}

/* Take the scratch, run the plan without the GIL and release every buffer. */
static PyObject *
finish(held *h, plan *p, PyObject *scratch, int threads)
{
    if (take_scratch(h, p, scratch, threads) < 0) {
        release_all(h);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    run_plan(p, threads);
    Py_END_ALLOW_THREADS
    release_all(h);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ functions */

PyDoc_STRVAR(train_step_doc,
"train_step(x, labels, rows, weights, biases, optimizer, hyper, step, states, losses,\n"
"           scratch, activation, slope, task, threads) -> None\n"
"\n"
"K optimiser steps of R stacked plain MLPs, in place, run r's k-th on the\n"
"batch of examples rows[r, k] (each thread takes a run and does all its\n"
"steps). x: float32 (N, inputs) examples; rows: int64 (R, K, B);\n"
"task 'classification': labels int64 (N,) class indices (cross-entropy);\n"
"task 'regression': labels float32 (N, outputs) targets (mean squared\n"
"error); weights: list of float32 (R, out, in); biases:\n"
"None or a list of float32 (R, out); optimizer: 'sgd', 'momentum' or 'adam';\n"
"hyper: float32 (R, 8), per run lr, weight and bias factors, weight and\n"
"bias l2, beta1 (the momentum), beta2, eps; step: the optimiser's step count\n"
"before these (Adam's bias corrections); states: a list of 0 (sgd), 1\n"
"(momentum: velocities) or 2 (adam: moments) lists of float32 arrays shaped\n"
"as the weights, then as the biases; losses: float32 (R, K) receives each\n"
"run's mean loss before each step (a stopped run, lr 0, is skipped: 0; a\n"
"run stops at a non-finite loss, that step not made: NaN after it);\n"
"scratch: float32 (threads, n), n >= scratch_floats(B, widths, True).");

static PyObject *
trainer_train_step(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *x, *labels, *rows, *weights, *biases, *hyper, *states, *losses, *scratch;
    const char *optimizer, *activation, *task;
    double slope;
    long long step;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOsOLOOOsdsi:train_step", &x, &labels, &rows, &weights, &biases, &optimizer,
                          &hyper, &step, &states, &losses, &scratch, &activation, &slope, &task, &threads)) {
        return NULL;
    }
    static const char *const tasks[] = {"classification", "regression"};
    static const char *const optimizers[] = {"sgd", "momentum", "adam"};
    held h;
    float *weight_pointers[MAX_LAYERS], *bias_pointers[MAX_LAYERS], *state_pointers[2][2][MAX_LAYERS];
    int widths[MAX_LAYERS + 1];
    plan p = {0};
    p.weights = weight_pointers;
    p.biases = bias_pointers;
    p.training = 1;
    if (hold_start(&h) < 0) {
        return NULL;
    }
    if (take_options(&p, activation, slope, threads) < 0 || take(&h, x, 'f', 2, 0, "x", NULL) < 0 ||
        take(&h, rows, 'q', 3, 0, "rows", NULL) < 0) {
        goto fail;
    }
    const Py_buffer *x_view = &h.views[0], *rows_view = &h.views[1];
    Py_ssize_t count = x_view->shape[0];
    p.x = x_view->buf;
    p.rows = rows_view->buf;
    p.runs = (int)rows_view->shape[0];
    p.steps = (int)rows_view->shape[1];
    p.batch = (int)rows_view->shape[2];
    p.first_step = step;
    if (take_layers(&h, &p, widths, weights, biases, p.runs) < 0) {
        goto fail;
    }
    Py_ssize_t x_shape[2] = {count, widths[0]};
    Py_ssize_t losses_shape[2] = {p.runs, p.steps};
    if (check_shape(x_view, x_shape, "x") < 0) {
        goto fail;
    }
    if (p.batch < 1) {
        PyErr_SetString(PyExc_ValueError, "rows has no columns; expected a batch of at least one example");
        goto fail;
    }
    if (step < 0) {
        PyErr_Format(PyExc_ValueError, "step=%lld is invalid; expected the optimiser's step count (>= 0)", step);
        goto fail;
    }
    if (check_rows(p.rows, (Py_ssize_t)p.runs * p.steps * p.batch, count) < 0) {
        goto fail;
    }
    p.task = choice(task, tasks, 2, "task", "'classification' or 'regression'");
    if (p.task < 0) {
        goto fail;
    }
    if (p.task == TASK_REGRESSION) {
        Py_ssize_t shape[2] = {count, widths[p.layers]};
        if (take(&h, labels, 'f', 2, 0, "labels", shape) < 0) {
            goto fail;
        }
        p.targets = h.views[h.count - 1].buf;
    } else {
        Py_ssize_t shape[1] = {count};
        if (take(&h, labels, 'q', 1, 0, "labels", shape) < 0) {
            goto fail;
        }
        p.labels = h.views[h.count - 1].buf;
        for (Py_ssize_t i = 0; i < (Py_ssize_t)p.runs * p.steps * p.batch; i++) {
            int64_t label = p.labels[p.rows[i]];
            if (label < 0 || label >= widths[p.layers]) {
                PyErr_Format(PyExc_ValueError, "labels holds %lld at row %lld; expected 0 to %d",
                             (long long)label, (long long)p.rows[i], widths[p.layers] - 1);
                goto fail;
            }
        }
    }
    Py_ssize_t hyper_shape[2] = {p.runs, HYPER_COLUMNS};
    if (take(&h, hyper, 'f', 2, 0, "hyper", hyper_shape) < 0 ||
        take(&h, losses, 'f', 2, 1, "losses", losses_shape) < 0) {
        goto fail;
    }
    p.hyper = h.views[h.count - 2].buf;
    p.losses = h.views[h.count - 1].buf;
    p.optimizer = choice(optimizer, optimizers, 3, "optimizer", "'sgd', 'momentum' or 'adam'");
    if (p.optimizer < 0 || take_states(&h, &p, states, state_pointers, biases != Py_None) < 0) {
        goto fail;
    }
    return finish(&h, &p, scratch, threads);
fail:
    release_all(&h);
    return NULL;
}

PyDoc_STRVAR(forward_doc,
"forward(x, weights, biases, outputs, scratch, activation, slope, threads) -> None\n"
"\n"
"The top-layer outputs of R stacked plain MLPs, written into outputs: float32\n"
"(R, N, outputs), for inputs x: float32 (R, N, inputs), or (1, N, inputs)\n"
"shared by every run. weights, biases as for train_step; scratch: float32\n"
"(threads, n), n >= scratch_floats(N, widths, False).");

static PyObject *
trainer_forward(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *x, *weights, *biases, *outputs, *scratch;
    const char *activation;
    double slope;
    int threads;
    if (!PyArg_ParseTuple(args, "OOOOOsdi:forward", &x, &weights, &biases, &outputs, &scratch, &activation,
                          &slope, &threads)) {
        return NULL;
    }
    held h;
    float *weight_pointers[MAX_LAYERS], *bias_pointers[MAX_LAYERS];
    int widths[MAX_LAYERS + 1];
    plan p = {0};
    p.weights = weight_pointers;
    p.biases = bias_pointers;
    if (hold_start(&h) < 0) {
        return NULL;
    }
    if (take_options(&p, activation, slope, threads) < 0 || take(&h, x, 'f', 3, 0, "x", NULL) < 0 ||
        take(&h, outputs, 'f', 3, 1, "outputs", NULL) < 0) {
        goto fail;
    }
    const Py_buffer *x_view = &h.views[0], *out_view = &h.views[1];
    p.runs = (int)out_view->shape[0];
    p.batch = (int)out_view->shape[1];
    if (take_layers(&h, &p, widths, weights, biases, p.runs) < 0) {
        goto fail;
    }
    int shared = x_view->shape[0] == 1;
    Py_ssize_t x_shape[3] = {shared ? 1 : p.runs, p.batch, widths[0]};
    Py_ssize_t out_shape[3] = {p.runs, p.batch, widths[p.layers]};
    if (check_shape(x_view, x_shape, "x") < 0 || check_shape(out_view, out_shape, "outputs") < 0) {
        goto fail;
    }
    p.x = x_view->buf;
    p.x_stride = shared ? 0 : (Py_ssize_t)p.batch * widths[0];
    p.outputs = out_view->buf;
    return finish(&h, &p, scratch, threads);
fail:
    release_all(&h);
    return NULL;
}

PyDoc_STRVAR(scratch_floats_doc,
"scratch_floats(batch, widths, training) -> int\n"
"\n"
"Floats of scratch one thread needs for train_step (training true) or\n"
"forward on `batch` rows of MLPs whose layer widths are `widths` (inputs\n"
"first, outputs last).");

static PyObject *
trainer_scratch_floats(PyObject *module, PyObject *args)
{
    (void)module;
    int batch, training;
    PyObject *sequence;
    if (!PyArg_ParseTuple(args, "iOp:scratch_floats", &batch, &sequence, &training)) {
        return NULL;
    }
    PyObject *items = PySequence_Fast(sequence, "widths must be a sequence of ints");
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    int widths[MAX_LAYERS + 1];
    if (batch < 1 || count < 2 || count > MAX_LAYERS + 1) {
        Py_DECREF(items);
        return PyErr_Format(PyExc_ValueError,
                            "scratch_floats(batch=%d, %zd widths) is invalid; expected batch >= 1 and 2 to %d widths",
                            batch, count, MAX_LAYERS + 1);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        long width = PyLong_AsLong(PySequence_Fast_GET_ITEM(items, i));
        if (width < 1 || width > INT32_MAX / 4) {
            Py_DECREF(items);
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "widths[%zd]=%ld is invalid; expected a positive width", i, width);
            }
            return NULL;
        }
        widths[i] = (int)width;
    }
    Py_DECREF(items);
    return PyLong_FromSize_t(scratch_layout(widths, (int)count - 1, batch, training, NULL, NULL));
}

PyDoc_STRVAR(bind_blas_doc,
"bind_blas(library) -> bool\n"
"\n"
"Use the sgemm and MKL's per-thread thread count of `library` (the path of\n"
"an already-loaded shared library, e.g. torch's libtorch_cpu.so; it is not\n"
"loaded here). True when both were found; False otherwise (no MKL, or a\n"
"platform without dlopen), and then train_step and forward refuse to run.");

static PyObject *
trainer_bind_blas(PyObject *module, PyObject *args)
{
    (void)module;
    const char *library;
    if (!PyArg_ParseTuple(args, "s:bind_blas", &library)) {
        return NULL;
    }
#ifdef INITLAB_HAVE_THREADS_AND_DLOPEN
    void *handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD);
    if (handle != NULL) {
        void *gemm = dlsym(handle, "sgemm_");
        void *local = dlsym(handle, "MKL_Set_Num_Threads_Local");
        if (gemm != NULL && local != NULL) {
            /* function pointers from dlsym: POSIX guarantees the conversion */
            memcpy(&sgemm, &gemm, sizeof gemm);
            memcpy(&set_local_threads, &local, sizeof local);
            Py_RETURN_TRUE;
        }
        dlclose(handle);
    }
#else
    (void)library;
#endif
    Py_RETURN_FALSE;
}

static PyMethodDef trainer_methods[] = {
    {"train_step", trainer_train_step, METH_VARARGS, train_step_doc},
    {"forward", trainer_forward, METH_VARARGS, forward_doc},
    {"scratch_floats", trainer_scratch_floats, METH_VARARGS, scratch_floats_doc},
    {"bind_blas", trainer_bind_blas, METH_VARARGS, bind_blas_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"A training step (train_step) and a forward pass (forward) of stacked plain\n"
"MLPs, one run at a time per thread with the BLAS torch ships (bind_blas).\n"
"implementation names the elementwise loops chosen at import: 'avx512f' when\n"
"the CPU has AVX-512F and INITLAB_KERNELS_PORTABLE is unset or empty, else\n"
"'portable'. max_layers is the most layers a network may have, max_threads\n"
"the most threads a call may use.");

static struct PyModuleDef trainer_module = {
    PyModuleDef_HEAD_INIT, "initlab._trainer", module_doc, -1, trainer_methods, NULL, NULL, NULL, NULL,
};

/* The AVX-512F loops when the CPU has them and INITLAB_KERNELS_PORTABLE is unset or empty. */
static void
choose_implementation(void)
{
#ifdef INITLAB_HAVE_AVX512_DISPATCH
    const char *portable = getenv("INITLAB_KERNELS_PORTABLE");
    __builtin_cpu_init();
    if ((portable == NULL || portable[0] == '\0') && __builtin_cpu_supports("avx512f")) {
        work_in_use = work_avx512;
        tanh_in_place = tanh_avx512;
        work_in_use_name = "avx512f";
    }
#endif
}

PyMODINIT_FUNC
PyInit__trainer(void)
{
    choose_implementation();
    PyObject *module = PyModule_Create(&trainer_module);
    if (module != NULL && (PyModule_AddStringConstant(module, "implementation", work_in_use_name) < 0 ||
                           PyModule_AddIntConstant(module, "max_layers", MAX_LAYERS) < 0 ||
                           PyModule_AddIntConstant(module, "max_threads", MAX_THREADS) < 0)) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
