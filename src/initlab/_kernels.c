/*
 * initlab._kernels: compiled inner loops of initlab.random's truncated-normal
 * rejection sampler (outside, refill) and of initlab.audit's per-layer
 * statistics (moments, histogram; see "audit statistics" below).
 *
 * Finding the ~4.5 % of normal draws outside +-2 sigma is, in numpy, a
 * comparison pass followed by np.flatnonzero, whose branch per element is
 * mispredicted at that random density: together they cost about half as
 * much as generating the values. Here one pass compares 64 values at a
 * time into a bit mask (SSE2 compares where available, AVX-512F ones when
 * the CPU has them, chosen at import) and writes the positions of the set
 * bits only, so the branches are few and predictable.
 *
 * Only the buffer protocol is used (no numpy C API, so building needs no
 * numpy headers). Loops run with the GIL released: chunks are filled by a
 * pool of threads. Every buffer is checked (format, dimensions, lengths,
 * positions in range) before and while it is written, so a wrong call
 * raises TypeError or ValueError instead of touching foreign memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Passes that may run on several threads (torch's OpenMP threads, found with
 * dlsym) take their pieces with an atomic counter; without dlsym or the GNU
 * atomic builtins everything runs on the caller's thread.
 */
#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#include <dlfcn.h>
#include <pthread.h>
#define INITLAB_HAVE_DLSYM 1
#define INITLAB_TAKE(counter) __atomic_fetch_add((counter), 1, __ATOMIC_RELAXED)
#define INITLAB_MARK(flag) __atomic_store_n((flag), 1, __ATOMIC_RELAXED)
#else
#define INITLAB_TAKE(counter) ((*(counter))++)
#define INITLAB_MARK(flag) (*(flag) = 1)
#endif

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define INITLAB_HAVE_SSE2 1
#endif

/*
 * AVX-512F versions of outside() and of moments()' blocks, compiled for
 * that target alone (no global -march flag: the module still loads on any
 * x86-64) and chosen at import time by avx512_chosen().
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define INITLAB_HAVE_AVX512_DISPATCH 1
#endif

/* Name of the implementation used when AVX-512F is not chosen. */
#ifdef INITLAB_HAVE_SSE2
#define INITLAB_BASELINE_NAME "sse2"
#else
#define INITLAB_BASELINE_NAME "portable"
#endif

/*
 * Whether to use the AVX-512F versions: the CPU has AVX-512F and POPCNT and
 * the environment variable INITLAB_KERNELS_PORTABLE is unset or empty (so
 * the baseline versions can be run and compared on any machine, as the
 * tests do). Asked once, at import.
 */
static int
avx512_chosen(void)
{
#ifdef INITLAB_HAVE_AVX512_DISPATCH
    const char *portable = getenv("INITLAB_KERNELS_PORTABLE");
    if (portable != NULL && portable[0] != '\0') {
        return 0;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt");
#else
    return 0;
#endif
}

#if defined(_MSC_VER)
#include <intrin.h>
static int
lowest_set_bit(uint64_t bits)
{
    unsigned long index;
    _BitScanForward64(&index, bits);
    return (int)index;
}
#else
static int
lowest_set_bit(uint64_t bits)
{
    return __builtin_ctzll(bits);
}
#endif

/* ------------------------------------------------------------------ buffers */

/* Native-order format code of a buffer ("f", "=f", "@f" -> 'f'), or 0. */
static char
format_code(const Py_buffer *view)
{
    const char *format = view->format == NULL ? "B" : view->format;
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') {
        format++;
    }
#else
    else if (format[0] == '>' || format[0] == '!') {
        format++;
    }
#endif
    return (format[0] != '\0' && format[1] == '\0') ? format[0] : 0;
}

/*
 * Get a one-dimensional C-contiguous buffer of float32 ('f') or int64
 * ('l'/'q' of 8 bytes) items from `object`, or set TypeError and return -1.
 */
static int
get_vector(PyObject *object, Py_buffer *view, char kind, int writable,
           const char *function, const char *argument)
{
    int flags = PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    const char *expected = kind == 'f' ? "float32" : "int64";
    if (PyObject_GetBuffer(object, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be a %s C-contiguous %s buffer (e.g. a numpy array), got %.100s",
                     function, argument, writable ? "writable" : "readable", expected,
                     Py_TYPE(object)->tp_name);
        return -1;
    }
    char code = format_code(view);
    int ok = view->ndim == 1 &&
             (kind == 'f' ? (code == 'f' && view->itemsize == 4)
                          : ((code == 'l' || code == 'q') && view->itemsize == 8));
    if (!ok) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be a one-dimensional %s buffer, got format '%s' "
                     "(item size %zd) with %d dimension(s)",
                     function, argument, expected, view->format == NULL ? "B" : view->format,
                     view->itemsize, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* `value` as a float32 bound; ValueError unless it is a float32 value (or +-inf). */
static int
float32_bound(double value, float *bound, const char *function, const char *argument)
{
    if (isnan(value) || (isfinite(value) && (fabs(value) > FLT_MAX || (double)(float)value != value))) {
        PyObject *shown = PyFloat_FromDouble(value);
        if (shown != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "%s: %s=%R is not a float32 value; expected a bound rounded to "
                         "float32 first (numpy.float32(%s))",
                         function, argument, shown, argument);
            Py_DECREF(shown);
        }
        return -1;
    }
    *bound = (float)value;
    return 0;
}

/* ------------------------------------------------------------------ loops */

/*
 * Bit j of the result is set when values[j] (j < 64) lies outside
 * [low, high]; *count receives the number of set bits.
 */
#ifdef INITLAB_HAVE_SSE2
static inline __m128i
outside4(const float *values, __m128 lows, __m128 highs)
{
    __m128 four = _mm_loadu_ps(values);
    return _mm_castps_si128(_mm_or_ps(_mm_cmplt_ps(four, lows), _mm_cmpgt_ps(four, highs)));
}

static inline uint64_t
outside_mask64(const float *values, __m128 lows, __m128 highs, int *count)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i minus_counts = zero;
    uint64_t mask = 0;
    for (int j = 0; j < 64; j += 16) {
        /* 16 flags as bytes (0 or -1), packed in order, then 16 mask bits */
        __m128i first = _mm_packs_epi32(outside4(values + j, lows, highs),
                                        outside4(values + j + 4, lows, highs));
        __m128i second = _mm_packs_epi32(outside4(values + j + 8, lows, highs),
                                         outside4(values + j + 12, lows, highs));
        __m128i flags = _mm_packs_epi16(first, second);
        minus_counts = _mm_sub_epi8(minus_counts, flags);
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(flags) << j;
    }
    /* the bit count without a POPCNT instruction (not in baseline x86-64) */
    __m128i sums = _mm_sad_epu8(minus_counts, zero);
    *count = _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_unpackhi_epi64(sums, sums));
    return mask;
}
#else
static inline uint64_t
outside_mask64(const float *values, float low, float high, int *count)
{
    uint64_t mask = 0;
    int flags = 0;
    for (int j = 0; j < 64; j++) {
        int flag = (values[j] < low) | (values[j] > high);
        mask |= (uint64_t)flag << j;
        flags += flag;
    }
    *count = flags;
    return mask;
}
#endif

/*
 * Write the positions of values outside [low, high], ascending, to
 * positions[0:count] and return count; positions[count:length] may be
 * overwritten with other numbers.
 */

/*
 * Write start + j for the `found` set bits j of `mask`, ascending, to
 * out[0:found]. The first four are written whether or not they exist (a
 * 64-value block rarely holds more, so the branch below is predictable; a
 * loop per set bit mispredicts its exit once per block). Called with
 * out = positions + count, count <= start, so the writes stay below
 * start + 4 <= length.
 */
static inline void
write_positions64(int64_t *out, Py_ssize_t start, uint64_t mask, int found)
{
    for (int k = 0; k < 4; k++) {
        out[k] = start + lowest_set_bit(mask | ((uint64_t)1 << 63));
        mask &= mask - 1;
    }
    for (int k = 4; k < found; k++) {
        out[k] = start + lowest_set_bit(mask);
        mask &= mask - 1;
    }
}

/* The positions of the last length % 64 values, one at a time. */
static inline Py_ssize_t
outside_tail(const float *values, Py_ssize_t start, Py_ssize_t length, float low, float high,
             int64_t *positions, Py_ssize_t count)
{
    for (; start < length; start++) {
        positions[count] = start;
        count += (values[start] < low) | (values[start] > high);
    }
    return count;
}

static Py_ssize_t
outside_positions(const float *values, Py_ssize_t length, float low, float high, int64_t *positions)
{
#ifdef INITLAB_HAVE_SSE2
    const __m128 lows = _mm_set1_ps(low), highs = _mm_set1_ps(high);
#else
    const float lows = low, highs = high;
#endif
    Py_ssize_t count = 0, start = 0;
    for (; start + 64 <= length; start += 64) {
        int found;
        uint64_t mask = outside_mask64(values + start, lows, highs, &found);
        write_positions64(positions + count, start, mask, found);
        count += found;
    }
    return outside_tail(values, start, length, low, high, positions, count);
}

#ifdef INITLAB_HAVE_AVX512_DISPATCH
/*
 * outside_positions with AVX-512F compares: two per 16 values give 16 mask
 * bits directly (SSE2 needs eight compares, three packs and a movemask),
 * POPCNT counts them; positions are written as above. Same results as the
 * portable version (a NaN compares false both ways; positions ascend).
 * Measured per 2^18 values (one thread): ~25 us against ~37 us with SSE2.
 * Writing positions by compress instructions (vpcompressq, two per 16
 * values) was slower (~35 us): their throughput, not the compares, bound it.
 */
__attribute__((target("avx512f,popcnt")))
static Py_ssize_t
outside_positions_avx512(const float *values, Py_ssize_t length, float low, float high,
                         int64_t *positions)
{
    const __m512 lows = _mm512_set1_ps(low), highs = _mm512_set1_ps(high);
    Py_ssize_t count = 0, start = 0;
    for (; start + 64 <= length; start += 64) {
        uint64_t mask = 0;
        for (int j = 0; j < 4; j++) {
            __m512 sixteen = _mm512_loadu_ps(values + start + 16 * j);
            __mmask16 flags = _mm512_cmp_ps_mask(sixteen, lows, _CMP_LT_OQ) |
                              _mm512_cmp_ps_mask(sixteen, highs, _CMP_GT_OQ);
            mask |= (uint64_t)flags << (16 * j);
        }
        int found = __builtin_popcountll(mask);
        write_positions64(positions + count, start, mask, found);
        count += found;
    }
    return outside_tail(values, start, length, low, high, positions, count);
}
#endif

typedef Py_ssize_t (*outside_function)(const float *, Py_ssize_t, float, float, int64_t *);

/* The outside_positions in use, and its name (the module's outside_implementation). */
static outside_function outside_in_use = outside_positions;
static const char *outside_in_use_name = INITLAB_BASELINE_NAME;

/* ------------------------------------------------------------------ functions */

PyDoc_STRVAR(outside_doc,
"outside(values, low, high, positions) -> int\n"
"\n"
"Write the positions i (ascending) with values[i] < low or values[i] > high\n"
"into positions[:count] and return count. positions[count:len(values)] may\n"
"be overwritten too; positions[len(values):] is left alone.\n"
"\n"
"Args:\n"
"    values: one-dimensional C-contiguous float32 buffer.\n"
"    low, high: the bounds; each must be a float32 value (or +-inf), the\n"
"        comparisons are done in float32.\n"
"    positions: writable one-dimensional C-contiguous int64 buffer with\n"
"        len(positions) >= len(values).\n"
"\n"
"Raises:\n"
"    TypeError: a buffer of another type, format or layout.\n"
"    ValueError: a bound that is not a float32 value, or positions too short.");

static PyObject *
kernels_outside(PyObject *module, PyObject *args)
{
    PyObject *values_object, *positions_object;
    double low, high;
    float low32, high32;
    Py_buffer values, positions;
    if (!PyArg_ParseTuple(args, "OddO:outside", &values_object, &low, &high, &positions_object)) {
        return NULL;
    }
    if (float32_bound(low, &low32, "outside", "low") < 0 ||
        float32_bound(high, &high32, "outside", "high") < 0) {
        return NULL;
    }
    if (get_vector(values_object, &values, 'f', 0, "outside", "values") < 0) {
        return NULL;
    }
    if (get_vector(positions_object, &positions, 'l', 1, "outside", "positions") < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    Py_ssize_t length = values.shape[0];
    if (positions.shape[0] < length) {
        PyErr_Format(PyExc_ValueError,
                     "outside: positions has %zd items but values has %zd; expected "
                     "len(positions) >= len(values)",
                     positions.shape[0], length);
        PyBuffer_Release(&values);
        PyBuffer_Release(&positions);
        return NULL;
    }
    Py_ssize_t count;
    Py_BEGIN_ALLOW_THREADS
    count = outside_in_use((const float *)values.buf, length, low32, high32,
                           (int64_t *)positions.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&values);
    PyBuffer_Release(&positions);
    return PyLong_FromSsize_t(count);
}

PyDoc_STRVAR(refill_doc,
"refill(values, positions, start, proposal, low, high) -> int\n"
"\n"
"Write the proposal values inside [low, high], in their order, at\n"
"values[positions[start]], values[positions[start + 1]], ... until the\n"
"proposal or the positions run out; return how many were written.\n"
"\n"
"Args:\n"
"    values: writable one-dimensional C-contiguous float32 buffer.\n"
"    positions: one-dimensional C-contiguous int64 buffer of indices into\n"
"        values (each must satisfy 0 <= index < len(values)).\n"
"    start: first entry of positions to fill, 0 <= start <= len(positions).\n"
"    proposal: one-dimensional C-contiguous float32 buffer of candidates.\n"
"    low, high: the bounds; each must be a float32 value (or +-inf), the\n"
"        comparisons are done in float32.\n"
"\n"
"Raises:\n"
"    TypeError: a buffer of another type, format or layout.\n"
"    ValueError: a bound that is not a float32 value, start out of range, or\n"
"        a position outside values (positions before it are already written).");

static PyObject *
kernels_refill(PyObject *module, PyObject *args)
{
    PyObject *values_object, *positions_object, *proposal_object;
    Py_ssize_t start;
    double low, high;
    float low32, high32;
    Py_buffer values, positions, proposal;
    if (!PyArg_ParseTuple(args, "OOnOdd:refill", &values_object, &positions_object, &start,
                          &proposal_object, &low, &high)) {
        return NULL;
    }
    if (float32_bound(low, &low32, "refill", "low") < 0 ||
        float32_bound(high, &high32, "refill", "high") < 0) {
        return NULL;
    }
    if (get_vector(values_object, &values, 'f', 1, "refill", "values") < 0) {
        return NULL;
    }
    if (get_vector(positions_object, &positions, 'l', 0, "refill", "positions") < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    if (get_vector(proposal_object, &proposal, 'f', 0, "refill", "proposal") < 0) {
        PyBuffer_Release(&values);
        PyBuffer_Release(&positions);
        return NULL;
    }
    Py_ssize_t length = values.shape[0], wanted = positions.shape[0];
    Py_ssize_t offered = proposal.shape[0], filled = 0, taken = 0;
    int64_t bad_position = 0;
    int bad = 0;
    if (start < 0 || start > wanted) {
        PyErr_Format(PyExc_ValueError,
                     "refill: start=%zd is out of range; expected 0 <= start <= len(positions) = %zd",
                     start, wanted);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    float *target = (float *)values.buf;
    const int64_t *where = (const int64_t *)positions.buf + start;
    const float *candidates = (const float *)proposal.buf;
    Py_ssize_t missing = wanted - start;
    for (; taken < offered && filled < missing; taken++) {
        float candidate = candidates[taken];
        if (candidate >= low32 && candidate <= high32) {
            int64_t position = where[filled];
            if (position < 0 || position >= length) {
                bad = 1;
                bad_position = position;
                break;
            }
            target[position] = candidate;
            filled++;
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_Format(PyExc_ValueError,
                     "refill: positions[%zd]=%lld is outside values (length %zd); "
                     "expected 0 <= position < %zd",
                     start + filled, (long long)bad_position, length, length);
    }
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&positions);
    PyBuffer_Release(&proposal);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(filled);
}

/* ------------------------------------------------------------------ audit statistics */

/*
 * Running figures of one pass over float32 values: sum and sum of squares
 * in double, and the range (NaN ignored), in MOMENT_LANES independent lanes
 * (value i of a block goes to lane i % MOMENT_LANES) so that consecutive
 * values are not added on one dependency chain and SIMD registers hold the
 * lanes; the lanes are summed once at the end, in the same order by every
 * implementation, so all give the same result. (A float32 value's square
 * is exact in double, so fused and separate multiply-adds agree too.)
 * NaN/inf need no test per value: they make the sum NaN or the range
 * infinite, and are counted afterwards only when that happens.
 */
#define MOMENT_LANES 32

typedef struct {
    double sum[MOMENT_LANES];
    double squares[MOMENT_LANES];
    float minimum[MOMENT_LANES];
    float maximum[MOMENT_LANES];
} moment_lanes;

static void
moment_lanes_init(moment_lanes *lanes)
{
    for (int j = 0; j < MOMENT_LANES; j++) {
        lanes->sum[j] = 0.0;
        lanes->squares[j] = 0.0;
        lanes->minimum[j] = INFINITY;
        lanes->maximum[j] = -INFINITY;
    }
}

/* One value into lane j; *largest keeps the block's maximum (the order of minps/maxps). */
static inline void
moment_lane_add(moment_lanes *lanes, int j, float value, float *largest)
{
    double wide = (double)value;
    lanes->sum[j] += wide;
    lanes->squares[j] += wide * wide;
    lanes->minimum[j] = value < lanes->minimum[j] ? value : lanes->minimum[j];
    lanes->maximum[j] = value > lanes->maximum[j] ? value : lanes->maximum[j];
    *largest = value > *largest ? value : *largest;
}

/*
 * Add the whole blocks of MOMENT_LANES values of values[0:length] to the
 * lanes, raise *largest to their maximum, and return how many were added.
 */
typedef Py_ssize_t (*moment_blocks_function)(moment_lanes *, const float *, Py_ssize_t, float *);

static Py_ssize_t
moment_blocks_portable(moment_lanes *lanes, const float *values, Py_ssize_t length, float *largest)
{
    Py_ssize_t blocks = length / MOMENT_LANES * MOMENT_LANES;
#ifdef INITLAB_HAVE_SSE2
    /* Eight registers of four float lanes, sixteen of two double lanes. */
    __m128d sum[16], squares[16];
    __m128 minimum[8], maximum[8], block_max[8];
    for (int k = 0; k < 16; k++) {
        sum[k] = _mm_loadu_pd(lanes->sum + 2 * k);
        squares[k] = _mm_loadu_pd(lanes->squares + 2 * k);
    }
    for (int k = 0; k < 8; k++) {
        minimum[k] = _mm_loadu_ps(lanes->minimum + 4 * k);
        maximum[k] = _mm_loadu_ps(lanes->maximum + 4 * k);
        block_max[k] = _mm_set1_ps(-INFINITY);
    }
    for (Py_ssize_t i = 0; i < blocks; i += MOMENT_LANES) {
        for (int k = 0; k < 8; k++) {
            __m128 value = _mm_loadu_ps(values + i + 4 * k);
            __m128d low_half = _mm_cvtps_pd(value), high_half = _mm_cvtps_pd(_mm_movehl_ps(value, value));
            sum[2 * k] = _mm_add_pd(sum[2 * k], low_half);
            sum[2 * k + 1] = _mm_add_pd(sum[2 * k + 1], high_half);
            squares[2 * k] = _mm_add_pd(squares[2 * k], _mm_mul_pd(low_half, low_half));
            squares[2 * k + 1] = _mm_add_pd(squares[2 * k + 1], _mm_mul_pd(high_half, high_half));
            minimum[k] = _mm_min_ps(value, minimum[k]);
            block_max[k] = _mm_max_ps(value, block_max[k]);
        }
    }
    float block_largest[MOMENT_LANES];
    for (int k = 0; k < 8; k++) {
        maximum[k] = _mm_max_ps(block_max[k], maximum[k]);
        _mm_storeu_ps(lanes->minimum + 4 * k, minimum[k]);
        _mm_storeu_ps(lanes->maximum + 4 * k, maximum[k]);
        _mm_storeu_ps(block_largest + 4 * k, block_max[k]);
    }
    for (int k = 0; k < 16; k++) {
        _mm_storeu_pd(lanes->sum + 2 * k, sum[k]);
        _mm_storeu_pd(lanes->squares + 2 * k, squares[k]);
    }
    for (int j = 0; j < MOMENT_LANES; j++) {
        *largest = block_largest[j] > *largest ? block_largest[j] : *largest;
    }
#else
    for (Py_ssize_t i = 0; i < blocks; i += MOMENT_LANES) {
        for (int j = 0; j < MOMENT_LANES; j++) {
            moment_lane_add(lanes, j, values[i + j], largest);
        }
    }
#endif
    return blocks;
}

#ifdef INITLAB_HAVE_AVX512_DISPATCH
/* The same lanes in two 512-bit float and eight 512-bit double registers (AVX-512F). */
__attribute__((target("avx512f")))
static Py_ssize_t
moment_blocks_avx512(moment_lanes *lanes, const float *values, Py_ssize_t length, float *largest)
{
    Py_ssize_t blocks = length / MOMENT_LANES * MOMENT_LANES;
    __m512d sum[4], squares[4];
    __m512 minimum[2], maximum[2], block_max[2];
    for (int k = 0; k < 4; k++) {
        sum[k] = _mm512_loadu_pd(lanes->sum + 8 * k);
        squares[k] = _mm512_loadu_pd(lanes->squares + 8 * k);
    }
    for (int k = 0; k < 2; k++) {
        minimum[k] = _mm512_loadu_ps(lanes->minimum + 16 * k);
        maximum[k] = _mm512_loadu_ps(lanes->maximum + 16 * k);
        block_max[k] = _mm512_set1_ps(-INFINITY);
    }
    for (Py_ssize_t i = 0; i < blocks; i += MOMENT_LANES) {
        for (int k = 0; k < 2; k++) {
            __m512 value = _mm512_loadu_ps(values + i + 16 * k);
            __m512d low_half = _mm512_cvtps_pd(_mm512_castps512_ps256(value));
            __m512d high_half = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(value), 1)));
            sum[2 * k] = _mm512_add_pd(sum[2 * k], low_half);
            sum[2 * k + 1] = _mm512_add_pd(sum[2 * k + 1], high_half);
            squares[2 * k] = _mm512_fmadd_pd(low_half, low_half, squares[2 * k]);
            squares[2 * k + 1] = _mm512_fmadd_pd(high_half, high_half, squares[2 * k + 1]);
            minimum[k] = _mm512_min_ps(value, minimum[k]);
            block_max[k] = _mm512_max_ps(value, block_max[k]);
        }
    }
    float block_largest[MOMENT_LANES];
    for (int k = 0; k < 4; k++) {
        _mm512_storeu_pd(lanes->sum + 8 * k, sum[k]);
        _mm512_storeu_pd(lanes->squares + 8 * k, squares[k]);
    }
    for (int k = 0; k < 2; k++) {
        maximum[k] = _mm512_max_ps(block_max[k], maximum[k]);
        _mm512_storeu_ps(lanes->minimum + 16 * k, minimum[k]);
        _mm512_storeu_ps(lanes->maximum + 16 * k, maximum[k]);
        _mm512_storeu_ps(block_largest + 16 * k, block_max[k]);
    }
    for (int j = 0; j < MOMENT_LANES; j++) {
        *largest = block_largest[j] > *largest ? block_largest[j] : *largest;
    }
    return blocks;
}
#endif

/*
 * unit_max[u] = max(unit_max[u], rows[o][u]) over the rows of values seen as
 * (outer, units): a NaN is ignored (max(x, NaN) keeps x, as maxps does).
 */
typedef void (*row_maxima_function)(const float *, Py_ssize_t, Py_ssize_t, float *);

static void
row_maxima_portable(const float *values, Py_ssize_t outer, Py_ssize_t units, float *unit_max)
{
    for (Py_ssize_t o = 0; o < outer; o++) {
        const float *row = values + o * units;
        for (Py_ssize_t u = 0; u < units; u++) {
            unit_max[u] = row[u] > unit_max[u] ? row[u] : unit_max[u];
        }
    }
}

#ifdef INITLAB_HAVE_AVX512_DISPATCH
__attribute__((target("avx512f")))
static void
row_maxima_avx512(const float *values, Py_ssize_t outer, Py_ssize_t units, float *unit_max)
{
    for (Py_ssize_t o = 0; o < outer; o++) {
        const float *row = values + o * units;
        Py_ssize_t u = 0;
        for (; u + 16 <= units; u += 16) {
            __m512 current = _mm512_loadu_ps(unit_max + u);
            _mm512_storeu_ps(unit_max + u, _mm512_max_ps(_mm512_loadu_ps(row + u), current));
        }
        for (; u < units; u++) {
            unit_max[u] = row[u] > unit_max[u] ? row[u] : unit_max[u];
        }
    }
}
#endif

static row_maxima_function row_maxima_in_use = row_maxima_portable;

static moment_blocks_function moment_blocks_in_use = moment_blocks_portable;
static const char *moment_blocks_in_use_name = INITLAB_BASELINE_NAME;

/* Add values[0:length] to the lanes; return the largest of them (NaN ignored, -inf if none). */
static float
moment_lanes_add(moment_lanes *lanes, const float *values, Py_ssize_t length)
{
    float largest = -INFINITY;
    Py_ssize_t i = moment_blocks_in_use(lanes, values, length, &largest);
    for (int j = 0; i < length; i++, j++) {
        moment_lane_add(lanes, j, values[i], &largest);
    }
    return largest;
}

/*
 * Get a one-dimensional C-contiguous buffer like get_vector, or accept None
 * (view->buf set to NULL, nothing to release).
 */
static int
get_optional_vector(PyObject *object, Py_buffer *view, char kind, const char *function,
                    const char *argument)
{
    if (object == Py_None) {
        view->buf = NULL;
        view->shape = NULL;
        return 0;
    }
    return get_vector(object, view, kind, 1, function, argument);
}

static void
release_optional(Py_buffer *view)
{
    if (view->buf != NULL) {
        PyBuffer_Release(view);
    }
}

/*
 * The pass of moments() runs in chunks of whole rows (outer positions) of
 * at least MOMENT_CHUNK values, at most MOMENT_CHUNKS_MAX of them: each
 * chunk has its own lanes, unit maxima and counts, merged in chunk order
 * afterwards. The chunks depend on the sizes only, so the result does not
 * depend on which thread read which chunk, nor on how many threads ran.
 *
 * Threads: those of the OpenMP runtime torch loaded (its GOMP_parallel and
 * omp_get_max_threads, found with dlsym once torch is imported), as many as
 * torch.get_num_threads(): right after one of the model's products its
 * worker threads are still spinning, ready, and the output they wrote is in
 * their own cache. Without that runtime (no torch in the process, another
 * system) the caller reads every chunk. Measured on 2 cores in an audit's
 * hooks: a 256 KB output or gradient ~2x faster than on one thread.
 */
#define MOMENT_CHUNK 16384
#define MOMENT_CHUNKS_MAX 64

#ifdef INITLAB_HAVE_DLSYM
typedef void (*gomp_parallel_function)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*omp_max_threads_function)(void);
static gomp_parallel_function gomp_parallel = NULL;
static omp_max_threads_function omp_max_threads = NULL;

/*
 * GNU libgomp cannot run a parallel region in a process forked after its
 * threads started (the child waits for threads it does not have; torch's own
 * operations hang there too): a forked child runs every pass on one thread.
 */
static int forked_child = 0;

static void
note_forked_child(void)
{
    forked_child = 1;
}
#endif

/*
 * Look for the OpenMP runtime until it is found (torch may be imported after
 * this module). Called with the GIL held, by every function that runs a
 * parallel pass before it releases the GIL: the pointers are only written
 * under the GIL, once, from NULL to their final value.
 */
static void
find_openmp(void)
{
#ifdef INITLAB_HAVE_DLSYM
    if (gomp_parallel == NULL || omp_max_threads == NULL) {
        omp_max_threads = (omp_max_threads_function)dlsym(RTLD_DEFAULT, "omp_get_max_threads");
        gomp_parallel = (gomp_parallel_function)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    }
#endif
}

/* How many threads to run `chunks` chunks on: 1 unless torch's OpenMP runtime was found. */
static int
parallel_threads(Py_ssize_t chunks)
{
#ifdef INITLAB_HAVE_DLSYM
    if (chunks > 1 && !forked_child && gomp_parallel != NULL && omp_max_threads != NULL) {
        int threads = omp_max_threads();
        return threads < chunks ? threads : (int)chunks;
    }
#endif
    return 1;
}

/* Run work(job) on `threads` threads (parallel_threads), or once on the caller's. */
static void
run_parallel(void (*work)(void *), void *job, int threads)
{
#ifdef INITLAB_HAVE_DLSYM
    if (threads > 1) {
        gomp_parallel(work, job, (unsigned)threads, 0);
        return;
    }
#endif
    work(job);
}

typedef struct {
    const float *data;
    Py_ssize_t units, inner, outer, step, chunks;
    float low32, high32;
    float *subsample;
    int unit_maxima;            /* whether chunk_maxima is filled */
    moment_lanes *lanes;        /* per chunk */
    Py_ssize_t *saturated;      /* per chunk */
    float *chunk_maxima;        /* chunks x units, when unit_maxima */
    Py_ssize_t next;            /* next chunk to take */
} moments_job;

static void
moments_chunk(moments_job *job, Py_ssize_t chunk)
{
    Py_ssize_t row = job->units * job->inner;
    Py_ssize_t first = job->outer * chunk / job->chunks, last = job->outer * (chunk + 1) / job->chunks;
    Py_ssize_t start = first * row, end = last * row;
    const float *data = job->data;
    moment_lanes *lanes = &job->lanes[chunk];
    moment_lanes_init(lanes);
    if (!job->unit_maxima || job->inner == 1) {
        moment_lanes_add(lanes, data + start, end - start);
    }
    if (job->unit_maxima) {
        float *unit_max = job->chunk_maxima + chunk * job->units;
        for (Py_ssize_t u = 0; u < job->units; u++) {
            unit_max[u] = -INFINITY;
        }
        if (job->inner == 1) {
            row_maxima_in_use(data + start, last - first, job->units, unit_max);
        }
        else {
            for (Py_ssize_t o = first; o < last; o++) {
                const float *values = data + o * row;
                for (Py_ssize_t u = 0; u < job->units; u++) {
                    float largest = moment_lanes_add(lanes, values + u * job->inner, job->inner);
                    unit_max[u] = largest > unit_max[u] ? largest : unit_max[u];
                }
            }
        }
    }
    Py_ssize_t saturated = 0;
    if (job->low32 > -INFINITY || job->high32 < INFINITY) {
        for (Py_ssize_t i = start; i < end; i++) {
            saturated += (data[i] <= job->low32) | (data[i] >= job->high32);
        }
    }
    job->saturated[chunk] = saturated;
    if (job->subsample != NULL) {
        for (Py_ssize_t k = (start + job->step - 1) / job->step; k * job->step < end; k++) {
            job->subsample[k] = data[k * job->step];
        }
    }
}

/* One thread's share: chunks taken in turn until none is left. */
static void
moments_work(void *argument)
{
    moments_job *job = (moments_job *)argument;
    for (;;) {
        Py_ssize_t chunk = INITLAB_TAKE(&job->next);
        if (chunk >= job->chunks) {
            return;
        }
        moments_chunk(job, chunk);
    }
}

/*
 * The pass of moments() over data[0:length] (sizes checked by the caller),
 * GIL released: totals (with the saturated count), unit maxima when
 * unit_max is not NULL, the strided subsample when subsample is not NULL.
 * Returns -1 (nothing written) when there is no memory for the chunks.
 */
typedef struct {
    Py_ssize_t nan_count, inf_count, saturated;
    double total, squares;
    float minimum, maximum;
} moment_totals;

static int
moments_pass(const float *data, Py_ssize_t length, Py_ssize_t units, Py_ssize_t inner, float low32,
             float high32, float *unit_max, Py_ssize_t step, float *subsample, moment_totals *totals)
{
    Py_ssize_t outer = length / units / inner;
    Py_ssize_t chunks = length / MOMENT_CHUNK;
    chunks = chunks < MOMENT_CHUNKS_MAX ? chunks : MOMENT_CHUNKS_MAX;
    chunks = chunks < outer ? chunks : outer;
    chunks = chunks > 1 ? chunks : 1;
    moment_lanes *lanes = malloc((size_t)chunks * sizeof(moment_lanes));
    Py_ssize_t *saturated = malloc((size_t)chunks * sizeof(Py_ssize_t));
    float *chunk_maxima = unit_max == NULL ? NULL : malloc((size_t)(chunks * units) * sizeof(float));
    if (lanes == NULL || saturated == NULL || (unit_max != NULL && chunk_maxima == NULL)) {
        free(lanes);
        free(saturated);
        free(chunk_maxima);
        return -1;
    }
    moments_job job = {data, units, inner, outer, step, chunks, low32, high32, subsample, unit_max != NULL,
                       lanes, saturated, chunk_maxima, 0};
    run_parallel(moments_work, &job, parallel_threads(chunks));
    totals->nan_count = totals->inf_count = totals->saturated = 0;
    totals->total = totals->squares = 0.0;
    totals->minimum = INFINITY;
    totals->maximum = -INFINITY;
    for (Py_ssize_t c = 0; c < chunks; c++) {
        double sum = 0.0, squares = 0.0;
        for (int j = 0; j < MOMENT_LANES; j++) {
            sum += lanes[c].sum[j];
            squares += lanes[c].squares[j];
            totals->minimum = lanes[c].minimum[j] < totals->minimum ? lanes[c].minimum[j] : totals->minimum;
            totals->maximum = lanes[c].maximum[j] > totals->maximum ? lanes[c].maximum[j] : totals->maximum;
        }
        totals->total += sum;
        totals->squares += squares;
        totals->saturated += saturated[c];
    }
    if (unit_max != NULL) {
        for (Py_ssize_t u = 0; u < units; u++) {
            float largest = -INFINITY;
            for (Py_ssize_t c = 0; c < chunks; c++) {
                float value = chunk_maxima[c * units + u];
                largest = value > largest ? value : largest;
            }
            unit_max[u] = largest;
        }
    }
    if (length > 0 && !(isfinite(totals->total) && isfinite(totals->minimum) && isfinite(totals->maximum))) {
        for (Py_ssize_t i = 0; i < length; i++) {
            totals->nan_count += isnan(data[i]) != 0;
            totals->inf_count += isinf(data[i]) != 0;
        }
    }
    free(lanes);
    free(saturated);
    free(chunk_maxima);
    return 0;
}

/*
 * A read-only float32 source of moments() and layer_pass(): a one-dimensional C-contiguous
 * float32 buffer (get_vector), or an (address, length) tuple naming `length`
 * C-contiguous float32 values at `address` (torch.Tensor.data_ptr() and
 * numel() of a tensor the caller keeps alive: no numpy view to make, which
 * costs more than the pass on a small layer), or None when optional.
 */
typedef struct {
    const float *data;
    Py_ssize_t length;
    int has_view;
    Py_buffer view;
} float_source;

static int
get_source(PyObject *object, float_source *source, int optional, const char *function, const char *argument)
{
    source->data = NULL;
    source->length = 0;
    source->has_view = 0;
    if (object == Py_None && optional) {
        return 0;
    }
    if (PyTuple_Check(object)) {
        void *address = NULL;
        Py_ssize_t length = -1;
        if (PyTuple_GET_SIZE(object) == 2) {
            address = PyLong_AsVoidPtr(PyTuple_GET_ITEM(object, 0));
            length = PyErr_Occurred() ? -1 : PyLong_AsSsize_t(PyTuple_GET_ITEM(object, 1));
        }
        if (PyErr_Occurred() || address == NULL || length < 0 || ((uintptr_t)address % sizeof(float)) != 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%s: %s=%R; expected a float32 buffer or an (address, length) tuple with a "
                         "non-null address aligned to 4 bytes and a length >= 0",
                         function, argument, object);
            return -1;
        }
        source->data = (const float *)address;
        source->length = length;
        return 0;
    }
    if (get_vector(object, &source->view, 'f', 0, function, argument) < 0) {
        return -1;
    }
    source->has_view = 1;
    source->data = (const float *)source->view.buf;
    source->length = source->view.shape[0];
    return 0;
}

static void
release_source(float_source *source)
{
    if (source->has_view) {
        PyBuffer_Release(&source->view);
        source->has_view = 0;
    }
}

PyDoc_STRVAR(moments_doc,
"moments(values, units, inner, low, high, unit_maxima, step, subsample) -> tuple\n"
"\n"
"One pass over a layer output's float32 values, seen as an array of shape\n"
"(outer, units, inner) (outer = len(values) // (units * inner)), returning\n"
"(nan_count, inf_count, total, squares, minimum, maximum, saturated):\n"
"\n"
"    total, squares: sum(x) and sum(x * x), accumulated in double in 32\n"
"        interleaved partial sums (more accurate than float32 sums);\n"
"    minimum, maximum: of the values other than NaN (+inf, -inf if none);\n"
"    saturated: how many values satisfy x <= low or x >= high (float32\n"
"        comparisons; 0 without a pass when low and high are -inf and +inf).\n"
"\n"
"When unit_maxima is given, unit_maxima[u] receives the largest value of\n"
"unit u over the outer and inner positions (NaN ignored). When subsample is\n"
"given, subsample[k] receives values[k * step] for k < ceil(len(values) / step)\n"
"(the evenly strided subsample values[::step]); later items are left alone.\n"
"\n"
"Args:\n"
"    values: one-dimensional C-contiguous float32 buffer, or an (address,\n"
"        length) tuple: length C-contiguous float32 values at that address\n"
"        (torch.Tensor.data_ptr(), numel()), which the caller keeps alive\n"
"        and unchanged for the call; nothing else can be checked.\n"
"    units, inner: sizes >= 1 with len(values) a multiple of units * inner.\n"
"    low, high: saturation limits; each must be a float32 value or +-inf.\n"
"    unit_maxima: None or a writable float32 buffer of exactly units items.\n"
"    step: subsample stride >= 1.\n"
"    subsample: None or a writable float32 buffer of at least\n"
"        ceil(len(values) / step) items.\n"
"\n"
"Raises:\n"
"    TypeError: a buffer of another type, format or layout.\n"
"    ValueError: a limit that is not a float32 value, sizes that do not fit\n"
"        values, or an output buffer of the wrong length.");

static PyObject *
kernels_moments(PyObject *module, PyObject *args)
{
    find_openmp();
    PyObject *values_object, *maxima_object, *subsample_object;
    Py_ssize_t units, inner, step;
    double low, high;
    float low32, high32;
    Py_buffer maxima, subsample;
    float_source values;
    if (!PyArg_ParseTuple(args, "OnnddOnO:moments", &values_object, &units, &inner, &low, &high,
                          &maxima_object, &step, &subsample_object)) {
        return NULL;
    }
    if (float32_bound(low, &low32, "moments", "low") < 0 ||
        float32_bound(high, &high32, "moments", "high") < 0) {
        return NULL;
    }
    if (units < 1 || inner < 1 || step < 1) {
        PyErr_Format(PyExc_ValueError,
                     "moments: units=%zd, inner=%zd, step=%zd; expected each >= 1", units, inner, step);
        return NULL;
    }
    if (get_source(values_object, &values, 0, "moments", "values") < 0) {
        return NULL;
    }
    if (get_optional_vector(maxima_object, &maxima, 'f', "moments", "unit_maxima") < 0) {
        release_source(&values);
        return NULL;
    }
    if (get_optional_vector(subsample_object, &subsample, 'f', "moments", "subsample") < 0) {
        release_source(&values);
        release_optional(&maxima);
        return NULL;
    }
    Py_ssize_t length = values.length;
    Py_ssize_t picked = length == 0 ? 0 : (length - 1) / step + 1;
    moment_totals totals = {0};
    if (length % units != 0 || (length / units) % inner != 0) {
        PyErr_Format(PyExc_ValueError,
                     "moments: values has %zd items, not a multiple of units * inner = %zd * %zd",
                     length, units, inner);
        goto done;
    }
    if (maxima.buf != NULL && maxima.shape[0] != units) {
        PyErr_Format(PyExc_ValueError,
                     "moments: unit_maxima has %zd items; expected units = %zd",
                     maxima.shape[0], units);
        goto done;
    }
    if (subsample.buf != NULL && subsample.shape[0] < picked) {
        PyErr_Format(PyExc_ValueError,
                     "moments: subsample has %zd items; expected at least ceil(%zd / step=%zd) = %zd",
                     subsample.shape[0], length, step, picked);
        goto done;
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = moments_pass(values.data, length, units, inner, low32, high32, (float *)maxima.buf, step,
                          (float *)subsample.buf, &totals);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
    }
done:
    release_source(&values);
    release_optional(&maxima);
    release_optional(&subsample);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return Py_BuildValue("nnddddn", totals.nan_count, totals.inf_count, totals.total, totals.squares,
                         (double)totals.minimum, (double)totals.maximum, totals.saturated);
}

/* ((value - low) * bins) / (high - low) rounded to float32 at each step, as torch does. */
static inline float
histogram_position(float value, float low, float scale, float width)
{
    return ((value - low) * scale) / width;
}

PyDoc_STRVAR(histogram_doc,
"histogram(values, counts) -> (low, high)\n"
"\n"
"Count sorted float32 values into len(counts) equal bins from their minimum\n"
"low = values[0] to their maximum high = values[-1], as torch.histc(values,\n"
"len(counts), min=low, max=high) does: x goes to bin\n"
"int(((x - low) * bins) / (high - low)), each operation rounded to float32,\n"
"the maximum into the last bin. That bin number never decreases along\n"
"sorted values, so each bin's edge is found by bisection (O(bins log n)).\n"
"Returns (low, high). When every value is equal (low == high), counts is set\n"
"to zero: torch.histc's convention for an empty range is the caller's.\n"
"\n"
"Args:\n"
"    values: one-dimensional C-contiguous float32 buffer of finite values\n"
"        sorted ascending, at least one.\n"
"    counts: writable one-dimensional C-contiguous int64 buffer, >= 1 item.\n"
"\n"
"Raises:\n"
"    TypeError: a buffer of another type, format or layout.\n"
"    ValueError: no values or no bins, values not sorted ascending (a NaN\n"
"        counts as out of order), or an infinite value.");

static PyObject *
kernels_histogram(PyObject *module, PyObject *args)
{
    PyObject *values_object, *counts_object;
    Py_buffer values, counts;
    if (!PyArg_ParseTuple(args, "OO:histogram", &values_object, &counts_object)) {
        return NULL;
    }
    if (get_vector(values_object, &values, 'f', 0, "histogram", "values") < 0) {
        return NULL;
    }
    if (get_vector(counts_object, &counts, 'l', 1, "histogram", "counts") < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    Py_ssize_t length = values.shape[0], bins = counts.shape[0], unsorted = 0;
    const float *data = (const float *)values.buf;
    float low = 0.0f, high = 0.0f;
    if (length == 0 || bins == 0) {
        PyErr_Format(PyExc_ValueError,
                     "histogram: values has %zd items and counts %zd; expected at least one of each",
                     length, bins);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i + 1 < length; i++) {
        unsorted += !(data[i] <= data[i + 1]);
    }
    Py_END_ALLOW_THREADS
    low = data[0];
    high = data[length - 1];
    if (unsorted > 0 || isnan(low) || isnan(high)) {
        PyErr_Format(PyExc_ValueError,
                     "histogram: values are not sorted ascending (%zd neighbour pairs out of order "
                     "or NaN); expected sorted finite values",
                     unsorted);
        goto done;
    }
    if (!(fabsf(low) <= FLT_MAX && fabsf(high) <= FLT_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "histogram: values run from %s to %s; expected finite values",
                     low < -FLT_MAX ? "-inf" : "a finite value", high > FLT_MAX ? "inf" : "a finite value");
        goto done;
    }
    int64_t *bin_counts = (int64_t *)counts.buf;
    for (Py_ssize_t b = 0; b < bins; b++) {
        bin_counts[b] = 0;
    }
    if (high > low) {
        float width = high - low, scale = (float)bins;
        /* below[b] = how many values have a position < b + 1, i.e. lie in bins 0..b. */
        Py_ssize_t previous = 0;
        for (Py_ssize_t b = 0; b + 1 < bins; b++) {
            float edge = (float)(b + 1);
            Py_ssize_t first = previous, last = length;
            while (first < last) {
                Py_ssize_t middle = first + (last - first) / 2;
                if (histogram_position(data[middle], low, scale, width) < edge) {
                    first = middle + 1;
                }
                else {
                    last = middle;
                }
            }
            bin_counts[b] = first - previous;
            previous = first;
        }
        bin_counts[bins - 1] = length - previous;
    }
done:
    PyBuffer_Release(&values);
    PyBuffer_Release(&counts);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return Py_BuildValue("dd", (double)low, (double)high);
}

/* A float's bits as an unsigned key in the float's order (-0.0 just below +0.0). */
static inline uint32_t
order_key(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

typedef struct {
    float value;
    uint32_t unit;
} unit_value;

/* Sort items[0:length] (no NaN) by value: insertion sort when short, else an LSD
 * radix sort of order_key() with 8-bit digits through scratch[0:length]. */
static void
sort_unit_values(unit_value *items, unit_value *scratch, Py_ssize_t length)
{
    if (length <= 64) {
        for (Py_ssize_t i = 1; i < length; i++) {
            unit_value item = items[i];
            Py_ssize_t j = i;
            for (; j > 0 && items[j - 1].value > item.value; j--) {
                items[j] = items[j - 1];
            }
            items[j] = item;
        }
        return;
    }
    unit_value *from = items, *to = scratch;
    for (int shift = 0; shift < 32; shift += 8) {
        Py_ssize_t starts[257] = {0};
        for (Py_ssize_t i = 0; i < length; i++) {
            starts[((order_key(from[i].value) >> shift) & 0xFF) + 1]++;
        }
        for (int digit = 0; digit < 256; digit++) {
            starts[digit + 1] += starts[digit];
        }
        for (Py_ssize_t i = 0; i < length; i++) {
            to[starts[(order_key(from[i].value) >> shift) & 0xFF]++] = from[i];
        }
        unit_value *swap = from;
        from = to;
        to = swap;
    }
    /* four passes: the sorted items are back in items */
}

#define UNITS_APART_RUN 64

/*
 * Whether units first and second differ by more than limit at one of the
 * positions (o, inner 0) for o = step, 2 step, ... < outer of data seen as
 * (outer, units, inner).
 */
static int
units_differ(const float *data, Py_ssize_t outer, Py_ssize_t units, Py_ssize_t inner, Py_ssize_t step,
             uint32_t first, uint32_t second, double limit)
{
    for (Py_ssize_t o = step; o < outer; o += step) {
        const float *row = data + o * units * inner;
        double gap = fabs((double)row[first * inner] - (double)row[second * inner]);
        if (isnan(gap)) {
            return 0;  /* the full check decides */
        }
        if (gap > limit) {
            return 1;
        }
    }
    return 0;
}

/*
 * Whether units first and second have weight rows (and biases) that differ
 * by more than limit somewhere: weight seen as (units, width), bias NULL or
 * (units,).
 */
static int
rows_differ(const float *weight, Py_ssize_t width, const float *bias, uint32_t first, uint32_t second,
            double limit)
{
    const float *a = weight + (Py_ssize_t)first * width, *b = weight + (Py_ssize_t)second * width;
    for (Py_ssize_t k = 0; k < width; k++) {
        if (fabs((double)a[k] - (double)b[k]) > limit) {
            return 1;
        }
    }
    return bias != NULL && fabs((double)bias[first] - (double)bias[second]) > limit;
}

/*
 * The comparison of units_apart() (arguments checked by the caller, GIL
 * released): rows NULL or units weight rows of `width` values, biases NULL
 * or one per unit; items: scratch room for 2 * units unit_value.
 */
static int
units_apart_pass(const float *data, Py_ssize_t length, Py_ssize_t units, Py_ssize_t inner, double limit,
                 Py_ssize_t step, const float *rows, Py_ssize_t width, const float *biases, double rtol,
                 double weight_scale, unit_value *items)
{
    int apart = 1;
    Py_ssize_t outer = length / units / inner;
    double row_limit = -1.0;  /* 2 rtol max(weight_scale, |bias|), when first needed */
    for (Py_ssize_t u = 0; u < units && apart; u++) {
        items[u].value = data[u * inner];
        items[u].unit = (uint32_t)u;
        apart = !isnan(items[u].value);
    }
    if (apart) {
        sort_unit_values(items, items + units, units);
    }
    /* runs [start, end) of sorted values with neighbour gaps <= limit */
    for (Py_ssize_t start = 0; start < units && apart;) {
        Py_ssize_t end = start + 1;
        while (end < units && (double)items[end].value - (double)items[end - 1].value <= limit) {
            end++;
        }
        if (end - start > UNITS_APART_RUN) {
            apart = 0;
        }
        for (Py_ssize_t i = start; i < end && apart; i++) {
            for (Py_ssize_t j = i + 1; j < end && apart; j++) {
                if ((double)items[j].value - (double)items[i].value > limit ||
                    units_differ(data, outer, units, inner, step, items[i].unit, items[j].unit, limit)) {
                    continue;
                }
                if (rows == NULL) {
                    apart = 0;
                    break;
                }
                if (row_limit < 0.0) {
                    double scale = weight_scale;
                    for (Py_ssize_t u = 0; biases != NULL && u < units; u++) {
                        double magnitude = fabs((double)biases[u]);
                        scale = magnitude > scale ? magnitude : scale;
                    }
                    row_limit = 2.0 * rtol * scale;
                }
                apart = rows_differ(rows, width, biases, items[i].unit, items[j].unit, row_limit);
            }
        }
        start = end;
    }
    return apart;
}

PyDoc_STRVAR(units_apart_doc,
"units_apart(values, units, inner, limit, step, weight=None, bias=None, rtol=0.0,\n"
"            weight_scale=0.0) -> bool\n"
"\n"
"Whether no two units of a layer output are alike: alike means within\n"
"limit of each other at every position (o, 0) for o = 0, step, 2 step, ...\n"
"of the output seen as (outer, units, inner) (the positions the audit's\n"
"symmetry check compares first) and, when weight is given, weight rows and\n"
"biases within 2 * rtol * max(weight_scale, max|bias|) of each other\n"
"(weight_scale: the weights' largest magnitude, or an upper bound of it).\n"
"The units are sorted by their value\n"
"at (0, 0) (a radix sort); only units in a run of sorted values less than\n"
"limit apart can be alike, and each pair within a run is compared further.\n"
"True means the symmetry check would find no pair; False that it must look\n"
"(alike units, a run of more than 64 units, or a NaN compared).\n"
"\n"
"Args:\n"
"    values: one-dimensional C-contiguous float32 buffer.\n"
"    units, inner: sizes >= 1 with len(values) a multiple of units * inner.\n"
"    limit: the largest difference of outputs counted as equal (>= 0).\n"
"    step: stride >= 1 of the compared positions along outer.\n"
"    weight: None or a float32 buffer of units weight rows of equal width.\n"
"    bias: None or a float32 buffer of units values (only with weight).\n"
"    rtol: relative tolerance of equal weights (>= 0).\n"
"    weight_scale: the weights' largest magnitude or a bound of it (>= 0).\n"
"\n"
"Raises:\n"
"    TypeError: a buffer of another type, format or layout.\n"
"    ValueError: sizes that do not fit values or weight, a bad step, or a\n"
"        negative or NaN limit, rtol or weight_scale.\n"
"    MemoryError: no memory to sort the units' values.");

static PyObject *
kernels_units_apart(PyObject *module, PyObject *args)
{
    PyObject *values_object, *weight_object = Py_None, *bias_object = Py_None;
    Py_ssize_t units, inner, step;
    double limit, rtol = 0.0, weight_scale = 0.0;
    Py_buffer values, weight, bias;
    if (!PyArg_ParseTuple(args, "Onndn|OOdd:units_apart", &values_object, &units, &inner, &limit, &step,
                          &weight_object, &bias_object, &rtol, &weight_scale)) {
        return NULL;
    }
    if (get_vector(values_object, &values, 'f', 0, "units_apart", "values") < 0) {
        return NULL;
    }
    if (get_optional_vector(weight_object, &weight, 'f', "units_apart", "weight") < 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    if (get_optional_vector(bias_object, &bias, 'f', "units_apart", "bias") < 0) {
        PyBuffer_Release(&values);
        release_optional(&weight);
        return NULL;
    }
    int apart = 1;
    unit_value *items = NULL;
    Py_ssize_t length = values.shape[0];
    if (units < 1 || inner < 1 || step < 1 || length == 0 || length % units != 0 || (length / units) % inner != 0) {
        PyErr_Format(PyExc_ValueError,
                     "units_apart: units=%zd, inner=%zd, step=%zd for %zd values; expected each >= 1 and "
                     "len(values) a non-zero multiple of units * inner",
                     units, inner, step, length);
        goto done;
    }
    const char *negative = !(limit >= 0.0) ? "limit" : !(rtol >= 0.0) ? "rtol" : !(weight_scale >= 0.0) ? "weight_scale" : NULL;
    if (negative != NULL) {
        double shown_value = !(limit >= 0.0) ? limit : !(rtol >= 0.0) ? rtol : weight_scale;
        PyObject *shown = PyFloat_FromDouble(shown_value);
        if (shown != NULL) {
            PyErr_Format(PyExc_ValueError, "units_apart: %s=%R; expected a number >= 0", negative, shown);
            Py_DECREF(shown);
        }
        goto done;
    }
    if ((weight.buf != NULL && weight.shape[0] % units != 0) ||
        (bias.buf != NULL && (weight.buf == NULL || bias.shape[0] != units))) {
        PyErr_Format(PyExc_ValueError,
                     "units_apart: weight has %zd items and bias %zd for %zd units; expected weight rows "
                     "(a multiple of units) and, with weight only, one bias per unit",
                     weight.buf == NULL ? (Py_ssize_t)-1 : weight.shape[0],
                     bias.buf == NULL ? (Py_ssize_t)-1 : bias.shape[0], units);
        goto done;
    }
    if (units < 2) {
        goto done;
    }
    items = malloc(2 * (size_t)units * sizeof(unit_value));
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    apart = units_apart_pass((const float *)values.buf, length, units, inner, limit, step, (const float *)weight.buf,
                             weight.buf == NULL ? 0 : weight.shape[0] / units, (const float *)bias.buf, rtol,
                             weight_scale, items);
    Py_END_ALLOW_THREADS
done:
    free(items);
    PyBuffer_Release(&values);
    release_optional(&weight);
    release_optional(&bias);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyBool_FromLong(apart);
}

PyDoc_STRVAR(layer_pass_doc,
"layer_pass(values, units, inner, low, high, unit_maxima, step, subsample,\n"
"           weight, bias, rtol, symmetry_step) -> tuple\n"
"\n"
"What the audit measures on a float32 layer output in its forward hook, in\n"
"one call: moments(values, units, inner, low, high, unit_maxima, step,\n"
"subsample), then, when weight is given (one row per unit), the moments of\n"
"the weight and whether its units are apart, returning\n"
"(nan_count, inf_count, total, squares, minimum, maximum, saturated, dead,\n"
" weight_moments, apart):\n"
"\n"
"    the first seven: as moments() returns them;\n"
"    dead: how many unit_maxima are <= 0 (0 without unit_maxima);\n"
"    weight_moments: None without weight, else the first six items of\n"
"        moments(weight, 1, 1, -inf, inf, None, 1, None);\n"
"    apart: None without weight, when symmetry_step is 0 or when the output\n"
"        or weight holds NaN/inf; else units_apart(values, units, inner,\n"
"        2 * rtol * max|values|, symmetry_step, weight, bias, rtol,\n"
"        max|weight|).\n"
"\n"
"Args:\n"
"    values ... subsample: as for moments().\n"
"    weight: None or a float32 source (buffer or (address, length)) of\n"
"        units rows of equal width.\n"
"    bias: None or a float32 source of units values (only with weight).\n"
"    rtol: relative tolerance of equal units (>= 0).\n"
"    symmetry_step: stride of the compared positions (>= 1), or 0 for no\n"
"        symmetry check.\n"
"\n"
"Raises:\n"
"    TypeError, ValueError: as moments() and units_apart() do, for the same\n"
"        arguments.\n"
"    MemoryError: no memory to sort the units' values.");

static PyObject *
kernels_layer_pass(PyObject *module, PyObject *args)
{
    find_openmp();
    PyObject *values_object, *maxima_object, *subsample_object, *weight_object, *bias_object;
    Py_ssize_t units, inner, step, symmetry_step;
    double low, high, rtol;
    float low32, high32;
    Py_buffer maxima, subsample;
    float_source values, weight, bias;
    if (!PyArg_ParseTuple(args, "OnnddOnOOOdn:layer_pass", &values_object, &units, &inner, &low, &high,
                          &maxima_object, &step, &subsample_object, &weight_object, &bias_object, &rtol,
                          &symmetry_step)) {
        return NULL;
    }
    if (float32_bound(low, &low32, "layer_pass", "low") < 0 ||
        float32_bound(high, &high32, "layer_pass", "high") < 0) {
        return NULL;
    }
    if (units < 1 || inner < 1 || step < 1 || symmetry_step < 0 || !(rtol >= 0.0)) {
        PyObject *shown = PyFloat_FromDouble(rtol);
        if (shown != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "layer_pass: units=%zd, inner=%zd, step=%zd, symmetry_step=%zd, rtol=%R; expected "
                         "units, inner and step >= 1, symmetry_step >= 0 and rtol >= 0",
                         units, inner, step, symmetry_step, shown);
            Py_DECREF(shown);
        }
        return NULL;
    }
    float_source *sources[3] = {&values, &weight, &bias};
    PyObject *source_objects[3] = {values_object, weight_object, bias_object};
    const char *source_names[3] = {"values", "weight", "bias"};
    int sourced = 0;
    for (; sourced < 3; sourced++) {
        if (get_source(source_objects[sourced], sources[sourced], sourced > 0, "layer_pass",
                       source_names[sourced]) < 0) {
            break;
        }
    }
    Py_buffer *optional[2] = {&maxima, &subsample};
    PyObject *objects[2] = {maxima_object, subsample_object};
    const char *names[2] = {"unit_maxima", "subsample"};
    int acquired = 0;
    for (; sourced == 3 && acquired < 2; acquired++) {
        if (get_optional_vector(objects[acquired], optional[acquired], 'f', "layer_pass", names[acquired]) < 0) {
            break;
        }
    }
    PyObject *result = NULL;
    unit_value *items = NULL;
    moment_totals totals = {0}, weight_totals = {0};
    Py_ssize_t length = values.length, dead = 0;
    Py_ssize_t picked = length == 0 ? 0 : (length - 1) / step + 1;
    int apart = -1;
    if (sourced < 3 || acquired < 2) {
        goto done;
    }
    if (length % units != 0 || (length / units) % inner != 0) {
        PyErr_Format(PyExc_ValueError,
                     "layer_pass: values has %zd items, not a multiple of units * inner = %zd * %zd",
                     length, units, inner);
        goto done;
    }
    if ((maxima.buf != NULL && maxima.shape[0] != units) || (subsample.buf != NULL && subsample.shape[0] < picked)) {
        PyErr_Format(PyExc_ValueError,
                     "layer_pass: unit_maxima has %zd items and subsample %zd; expected units = %zd and at "
                     "least ceil(%zd / step=%zd) = %zd",
                     maxima.buf == NULL ? (Py_ssize_t)-1 : maxima.shape[0],
                     subsample.buf == NULL ? (Py_ssize_t)-1 : subsample.shape[0], units, length, step, picked);
        goto done;
    }
    if ((weight.data != NULL && (weight.length == 0 || weight.length % units != 0)) ||
        (bias.data != NULL && (weight.data == NULL || bias.length != units))) {
        PyErr_Format(PyExc_ValueError,
                     "layer_pass: weight has %zd items and bias %zd for %zd units; expected weight rows "
                     "(a non-zero multiple of units) and, with weight only, one bias per unit",
                     weight.data == NULL ? (Py_ssize_t)-1 : weight.length,
                     bias.data == NULL ? (Py_ssize_t)-1 : bias.length, units);
        goto done;
    }
    int compare = weight.data != NULL && symmetry_step > 0 && length > 0;
    if (compare && units >= 2) {
        items = malloc(2 * (size_t)units * sizeof(unit_value));
        if (items == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    const float *data = (const float *)values.data;
    failed = moments_pass(data, length, units, inner, low32, high32, (float *)maxima.buf, step,
                          (float *)subsample.buf, &totals);
    for (Py_ssize_t u = 0; maxima.buf != NULL && u < units; u++) {
        dead += ((const float *)maxima.buf)[u] <= 0.0f;
    }
    if (weight.data != NULL && !failed) {
        failed = moments_pass((const float *)weight.data, weight.length, 1, 1, -INFINITY, INFINITY, NULL, 1, NULL,
                              &weight_totals);
    }
    if (compare && !failed && totals.nan_count + totals.inf_count + weight_totals.nan_count + weight_totals.inf_count == 0) {
        double scale = fmax(-(double)totals.minimum, (double)totals.maximum);
        double weight_scale = fmax(-(double)weight_totals.minimum, (double)weight_totals.maximum);
        apart = units < 2 ? 1 : units_apart_pass(data, length, units, inner, 2.0 * rtol * scale, symmetry_step,
                                                 (const float *)weight.data, weight.length / units,
                                                 (const float *)bias.data, rtol, weight_scale, items);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *weight_result = Py_None, *apart_result = Py_None;
    if (weight.data != NULL) {
        weight_result = Py_BuildValue("nndddd", weight_totals.nan_count, weight_totals.inf_count, weight_totals.total,
                                      weight_totals.squares, (double)weight_totals.minimum,
                                      (double)weight_totals.maximum);
        if (weight_result == NULL) {
            goto done;
        }
    }
    else {
        Py_INCREF(weight_result);
    }
    apart_result = apart < 0 ? Py_None : apart ? Py_True : Py_False;
    Py_INCREF(apart_result);
    result = Py_BuildValue("nnddddnnNN", totals.nan_count, totals.inf_count, totals.total, totals.squares,
                           (double)totals.minimum, (double)totals.maximum, totals.saturated, dead, weight_result,
                           apart_result);
done:
    free(items);
    for (int k = 0; k < sourced; k++) {
        release_source(sources[k]);
    }
    for (int k = 0; k < acquired; k++) {
        release_optional(optional[k]);
    }
    return result;
}

/*
 * equal_regions() and copy_regions(): memcmp or memcpy of many pairs of
 * memory regions (a model's parameters and their snapshot), in pieces of at
 * most REGION_PIECE bytes spread over torch's OpenMP threads like the
 * moments passes.
 */
#define REGION_PIECE (1 << 20)

typedef struct {
    char **first, **second;
    const Py_ssize_t *offsets, *sizes;  /* per piece: region offset and byte count */
    const Py_ssize_t *regions;          /* per piece: its region */
    char *differs;                      /* per region, set by any piece that differs (comparing) */
    int copy;                           /* copy first to second instead of comparing */
    Py_ssize_t pieces, next;
} regions_job;

static void
regions_work(void *argument)
{
    regions_job *job = (regions_job *)argument;
    for (;;) {
        Py_ssize_t piece = INITLAB_TAKE(&job->next);
        if (piece >= job->pieces) {
            return;
        }
        Py_ssize_t region = job->regions[piece], offset = job->offsets[piece];
        if (job->copy) {
            memcpy(job->second[region] + offset, job->first[region] + offset, (size_t)job->sizes[piece]);
        }
        else if (memcmp(job->first[region] + offset, job->second[region] + offset, (size_t)job->sizes[piece]) != 0) {
            INITLAB_MARK(&job->differs[region]);
        }
    }
}

/* Read a list of Python ints (addresses or sizes >= 0) into values[0:count]; -1 with an error naming it. */
static int
read_sizes(PyObject *items, Py_ssize_t count, Py_ssize_t *values, int addresses, const char *function,
           const char *argument)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        Py_ssize_t value = addresses ? (Py_ssize_t)PyLong_AsVoidPtr(item) : PyLong_AsSsize_t(item);
        if (PyErr_Occurred() || value < 0 || (addresses && value == 0)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %s[%zd]=%R; expected %s", function, argument, i, item,
                         addresses ? "a non-null address" : "a byte count >= 0");
            return -1;
        }
        values[i] = value;
    }
    return 0;
}

/* The call of equal_regions() (copy 0: a list of bools) or copy_regions() (copy 1: None). */
static PyObject *
regions_call(PyObject *args, int copy, const char *function)
{
    find_openmp();
    PyObject *objects[3], *lists[3] = {NULL, NULL, NULL}, *result = NULL;
    const char *names[3] = {copy ? "sources" : "first", copy ? "targets" : "second", "sizes"};
    if (!PyArg_UnpackTuple(args, function, 3, 3, &objects[0], &objects[1], &objects[2])) {
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        lists[k] = PySequence_Fast(objects[k], "");
        if (lists[k] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s: %s must be a list or tuple of ints, got %.100s",
                         function, names[k], Py_TYPE(objects[k])->tp_name);
            goto done;
        }
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(lists[0]);
    if (PySequence_Fast_GET_SIZE(lists[1]) != count || PySequence_Fast_GET_SIZE(lists[2]) != count) {
        PyErr_Format(PyExc_ValueError, "%s: %s, %s and sizes have %zd, %zd and %zd items; expected one length",
                     function, names[0], names[1], count, PySequence_Fast_GET_SIZE(lists[1]),
                     PySequence_Fast_GET_SIZE(lists[2]));
        goto done;
    }
    Py_ssize_t *values = PyMem_Malloc(3 * (size_t)(count > 0 ? count : 1) * sizeof(Py_ssize_t));
    char *differs = PyMem_Calloc(count > 0 ? (size_t)count : 1, 1);
    Py_ssize_t *pieces = NULL;
    if (values == NULL || differs == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    for (int k = 0; k < 3; k++) {
        if (read_sizes(lists[k], count, values + k * count, k < 2, function, names[k]) < 0) {
            goto release;
        }
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        total += (values[2 * count + i] + REGION_PIECE - 1) / REGION_PIECE;
    }
    pieces = PyMem_Malloc(3 * (size_t)(total > 0 ? total : 1) * sizeof(Py_ssize_t));
    if (pieces == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    Py_ssize_t piece = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        for (Py_ssize_t offset = 0; offset < values[2 * count + i]; offset += REGION_PIECE, piece++) {
            Py_ssize_t left = values[2 * count + i] - offset;
            pieces[piece] = i;
            pieces[total + piece] = offset;
            pieces[2 * total + piece] = left < REGION_PIECE ? left : REGION_PIECE;
        }
    }
    regions_job job = {(char **)values, (char **)(values + count), pieces + total, pieces + 2 * total,
                       pieces, differs, copy, total, 0};
    Py_BEGIN_ALLOW_THREADS
    run_parallel(regions_work, &job, parallel_threads(total));
    Py_END_ALLOW_THREADS
    if (copy) {
        result = Py_None;
        Py_INCREF(result);
    }
    else {
        result = PyList_New(count);
        for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
            PyObject *flag = differs[i] ? Py_False : Py_True;
            Py_INCREF(flag);
            PyList_SET_ITEM(result, i, flag);
        }
    }
release:
    PyMem_Free(values);
    PyMem_Free(differs);
    PyMem_Free(pieces);
done:
    for (int k = 0; k < 3; k++) {
        Py_XDECREF(lists[k]);
    }
    return result;
}

PyDoc_STRVAR(equal_regions_doc,
"equal_regions(first, second, sizes) -> list\n"
"\n"
"For each i, whether the sizes[i] bytes at address first[i] equal those at\n"
"second[i] (memcmp), as a list of bools; the comparisons run on torch's\n"
"OpenMP threads when it is loaded. The addresses are raw pointers\n"
"(torch.Tensor.data_ptr()) of memory the caller keeps alive and readable\n"
"for the call: nothing else can be checked.\n"
"\n"
"Raises:\n"
"    TypeError: arguments that are not lists or tuples of ints.\n"
"    ValueError: lists of different lengths, a null address or a negative\n"
"        size (named).\n"
"    MemoryError: no memory for the pieces.");

static PyObject *
kernels_equal_regions(PyObject *module, PyObject *args)
{
    return regions_call(args, 0, "equal_regions");
}

PyDoc_STRVAR(copy_regions_doc,
"copy_regions(sources, targets, sizes) -> None\n"
"\n"
"Copy the sizes[i] bytes at address sources[i] to address targets[i]\n"
"(memcpy; regions must not overlap), on torch's OpenMP threads when it is\n"
"loaded. The addresses are raw pointers (torch.Tensor.data_ptr()) of memory\n"
"the caller keeps alive, readable (sources) and writable (targets) for the\n"
"call: nothing else can be checked.\n"
"\n"
"Raises:\n"
"    TypeError, ValueError, MemoryError: as equal_regions().");

static PyObject *
kernels_copy_regions(PyObject *module, PyObject *args)
{
    return regions_call(args, 1, "copy_regions");
}

PyDoc_STRVAR(pass_threads_doc,
"pass_threads(chunks) -> int\n"
"\n"
"How many threads a pass of moments() or layer_pass() cut into `chunks`\n"
"chunks would run on now: min(chunks, torch.get_num_threads()) when the\n"
"OpenMP runtime torch loaded is found, else 1 (and 1 in a forked child,\n"
"where GNU libgomp cannot start a parallel region). (A pass over n values has\n"
"min(64, n // 16384, rows) chunks, at least one; its result does not\n"
"depend on the threads.)");

static PyObject *
kernels_pass_threads(PyObject *module, PyObject *args)
{
    find_openmp();
    Py_ssize_t chunks;
    if (!PyArg_ParseTuple(args, "n:pass_threads", &chunks)) {
        return NULL;
    }
    return PyLong_FromLong(parallel_threads(chunks));
}

static PyMethodDef kernels_methods[] = {
    {"outside", kernels_outside, METH_VARARGS, outside_doc},
    {"refill", kernels_refill, METH_VARARGS, refill_doc},
    {"moments", kernels_moments, METH_VARARGS, moments_doc},
    {"histogram", kernels_histogram, METH_VARARGS, histogram_doc},
    {"units_apart", kernels_units_apart, METH_VARARGS, units_apart_doc},
    {"layer_pass", kernels_layer_pass, METH_VARARGS, layer_pass_doc},
    {"pass_threads", kernels_pass_threads, METH_VARARGS, pass_threads_doc},
    {"equal_regions", kernels_equal_regions, METH_VARARGS, equal_regions_doc},
    {"copy_regions", kernels_copy_regions, METH_VARARGS, copy_regions_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"Compiled inner loops of initlab.random's truncated-normal rejection sampler\n"
"and of initlab.audit's per-layer statistics.\n"
"\n"
"outside() finds the positions of the values outside the bounds (64 values\n"
"per branch-free bit-mask step instead of numpy's mispredicted per-element\n"
"branch in flatnonzero); refill() writes accepted redraws at those\n"
"positions in order. moments() reads a layer output once for its sums\n"
"(in double), range, unit maxima, saturated count and strided subsample;\n"
"histogram() bins a sorted subsample as torch.histc does; units_apart()\n"
"tells whether a layer's units surely differ; layer_pass() runs moments()\n"
"and, for a layer with weight rows, the weight's moments and units_apart()\n"
"in one call from the audit's forward hook; pass_threads() tells how many\n"
"threads those passes use (torch's OpenMP threads, when torch is loaded);\n"
"equal_regions() and copy_regions() compare and copy a model's tensors\n"
"and their snapshot.\n"
"All release the\n"
"GIL and validate every buffer.\n"
"\n"
"outside_implementation and moments_implementation name the versions chosen\n"
"at import: 'avx512f' when the CPU has AVX-512F (x86-64), else 'sse2'\n"
"(x86-64) or 'portable'. Setting the environment variable\n"
"INITLAB_KERNELS_PORTABLE to a non-empty value before the import keeps the\n"
"portable ones (results are the same; the tests compare them).");

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT, "initlab._kernels", module_doc, -1, kernels_methods, NULL, NULL, NULL, NULL,
};

/* Switch every dispatched loop to its AVX-512F version when avx512_chosen(); once, at import. */
static void
choose_implementations(void)
{
#ifdef INITLAB_HAVE_AVX512_DISPATCH
    if (avx512_chosen()) {
        outside_in_use = outside_positions_avx512;
        outside_in_use_name = "avx512f";
        moment_blocks_in_use = moment_blocks_avx512;
        moment_blocks_in_use_name = "avx512f";
        row_maxima_in_use = row_maxima_avx512;
    }
#endif
}

PyMODINIT_FUNC
PyInit__kernels(void)
{
    choose_implementations();
#ifdef INITLAB_HAVE_DLSYM
    pthread_atfork(NULL, NULL, note_forked_child);
#endif
    PyObject *module = PyModule_Create(&kernels_module);
    if (module != NULL &&
        (PyModule_AddStringConstant(module, "outside_implementation", outside_in_use_name) < 0 ||
         PyModule_AddStringConstant(module, "moments_implementation", moment_blocks_in_use_name) < 0)) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
