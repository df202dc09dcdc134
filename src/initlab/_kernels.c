/*
 * initlab._kernels: compiled inner loops of initlab.random's truncated-normal
 * rejection sampler.
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

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define INITLAB_HAVE_SSE2 1
#endif

/*
 * An AVX-512F version of outside(), compiled for that target alone (no
 * global -march flag: the module still loads on any x86-64) and chosen at
 * import time when the CPU has AVX-512F and POPCNT.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define INITLAB_HAVE_AVX512_DISPATCH 1
#endif

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
static const char *outside_in_use_name =
#ifdef INITLAB_HAVE_SSE2
    "sse2";
#else
    "portable";
#endif

/*
 * Choose outside_in_use once, at import: AVX-512F when the CPU has it,
 * unless the environment variable INITLAB_KERNELS_PORTABLE is set to a
 * non-empty value (so the portable version can be run and compared on any
 * machine, as the tests do).
 */
static void
choose_outside(void)
{
#ifdef INITLAB_HAVE_AVX512_DISPATCH
    const char *portable = getenv("INITLAB_KERNELS_PORTABLE");
    if (portable != NULL && portable[0] != '\0') {
        return;
    }
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt")) {
        outside_in_use = outside_positions_avx512;
        outside_in_use_name = "avx512f";
    }
#endif
}

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

static PyMethodDef kernels_methods[] = {
    {"outside", kernels_outside, METH_VARARGS, outside_doc},
    {"refill", kernels_refill, METH_VARARGS, refill_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(module_doc,
"Compiled inner loops of initlab.random's truncated-normal rejection sampler.\n"
"\n"
"outside() finds the positions of the values outside the bounds (64 values\n"
"per branch-free bit-mask step instead of numpy's mispredicted per-element\n"
"branch in flatnonzero); refill() writes accepted redraws at those\n"
"positions in order. Both release the GIL and validate every buffer.\n"
"\n"
"outside_implementation names the version of outside() chosen at import:\n"
"'avx512f' when the CPU has AVX-512F (x86-64), else 'sse2' (x86-64) or\n"
"'portable'. Setting the environment variable INITLAB_KERNELS_PORTABLE to a\n"
"non-empty value before the import keeps the portable one (results are the\n"
"same; the tests compare the two).");

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT, "initlab._kernels", module_doc, -1, kernels_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    choose_outside();
    PyObject *module = PyModule_Create(&kernels_module);
    if (module != NULL &&
        PyModule_AddStringConstant(module, "outside_implementation", outside_in_use_name) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
