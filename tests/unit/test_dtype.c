/*  test_dtype - names, sizes, exact conversions and finiteness.

    References that are not our code: the CPU's F16C instructions (IEEE
    conversions in hardware) for F16, the well-known integer rounding
    trick for BF16, and GMP rationals (zfed_test_model.h) for rounding
    doubles directly.  Every F16 and BF16 value is tried.
*/
#include "zfed/zfed_model.h"
#include "zfed_test.h"
#include "zfed_test_model.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_F16C_REFERENCE 1
#endif

static uint32_t s_bits32(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static float s_float(uint32_t bits)
{
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void test_names(void)
{
    static const char *names[] = {"F64", "F32", "F16", "BF16", "I64", "I32",
                                  "I16", "I8",  "U64", "U32",  "U16", "U8"};
    static const size_t sizes[] = {8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1};
    for (int index = 0; index < ZFED_DTYPE_COUNT; index++) {
        zfed_dtype_t parsed = ZFED_DTYPE_COUNT;
        CHECK(zfed_dtype_parse(names[index], &parsed) == 0);
        CHECK_INT(parsed, index);
        CHECK_STR(zfed_dtype_name((zfed_dtype_t)index), names[index]);
        CHECK_INT(zfed_dtype_size((zfed_dtype_t)index), sizes[index]);
        CHECK(zfed_dtype_is_float((zfed_dtype_t)index) == (index <= ZFED_DTYPE_BF16));
        CHECK(strstr(zfed_dtype_list(), names[index]) != NULL);
    }
    CHECK(zfed_dtype_is_signed(ZFED_DTYPE_I8) && !zfed_dtype_is_signed(ZFED_DTYPE_U64));
    zfed_dtype_t untouched = ZFED_DTYPE_U8;
    static const char *refused[] = {"f32", "F32 ", "BOOL", "F8_E4M3", "", "float32", "I128"};
    for (size_t index = 0; index < sizeof refused / sizeof *refused; index++)
        CHECK(zfed_dtype_parse(refused[index], &untouched) == -1);
    CHECK(zfed_dtype_parse(NULL, &untouched) == -1);
    CHECK(untouched == ZFED_DTYPE_U8);
    CHECK_STR(zfed_dtype_name(ZFED_DTYPE_COUNT), "unknown");
    CHECK_INT(zfed_dtype_size((zfed_dtype_t)-1), 0);
}

#ifdef HAVE_F16C_REFERENCE
__attribute__((target("f16c"))) static uint16_t s_hardware_f16(float value)
{
    return (uint16_t)_cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

__attribute__((target("f16c"))) static float s_hardware_f32(uint16_t half)
{
    return _cvtsh_ss(half);
}
#endif

static void test_f16(void)
{
    bool hardware = false;
#ifdef HAVE_F16C_REFERENCE
    unsigned int eax, ebx, ecx, edx; //  F16C: CPUID leaf 1, ECX bit 29
    hardware = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
#endif
    for (uint32_t half = 0; half <= 0xffff; half++) {
        float wide = zfed_f16_to_f32((uint16_t)half);
        CHECK(s_bits32((float)zfed_f16_to_f64((uint16_t)half)) == s_bits32(wide) || isnan(wide));
        if (isnan(wide)) {
            CHECK((half & 0x7c00) == 0x7c00 && (half & 0x3ff));
            uint16_t back = zfed_f32_to_f16(wide);
            CHECK((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back >> 15) == (half >> 15));
            continue;
        }
        CHECK_INT(zfed_f32_to_f16(wide), half); //  round trip
        CHECK_INT(zfed_f64_to_f16((double)wide), half);
#ifdef HAVE_F16C_REFERENCE
        if (hardware)
            CHECK(s_bits32(s_hardware_f32((uint16_t)half)) == s_bits32(wide));
#endif
    }
    CHECK(zfed_f16_to_f32(0x3c00) == 1.0f);
    CHECK(zfed_f16_to_f32(0x0001) == 0x1p-24f); //  smallest subnormal
    CHECK(zfed_f16_to_f32(0x7bff) == 65504.0f);
    CHECK_INT(zfed_f32_to_f16(65520.0f), 0x7c00); //  halfway past the largest: infinity
    CHECK_INT(zfed_f32_to_f16(65519.99f), 0x7bff);
    CHECK_INT(zfed_f32_to_f16(-0.0f), 0x8000);
    CHECK_INT(zfed_f32_to_f16(0x1p-25f), 0x0000);           //  half the smallest: to even
    CHECK_INT(zfed_f32_to_f16(0x1p-25f * 1.0001f), 0x0001); //  above half
    CHECK_INT(zfed_f32_to_f16(-INFINITY), 0xfc00);
    //  Direct from double: 1 + 2^-11 + 2^-40 is above the tie; through
    //  float it would become the tie and round to even, down to 1.
    CHECK_INT(zfed_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
    CHECK_INT(zfed_f32_to_f16((float)(1.0 + 0x1p-11 + 0x1p-40)), 0x3c00);
    //  Random floats (every exponent) against the CPU's conversion.
#ifdef HAVE_F16C_REFERENCE
    if (hardware) {
        uint64_t state = 16;
        int mismatches = 0;
        for (int trial = 0; trial < 2000000; trial++) {
            uint32_t bits = (uint32_t)zfed_test_random(&state);
            if (trial % 2) //  half of them near F16's range
                bits = (bits & 0x8fffffffu) | 0x30000000u;
            float value = s_float(bits);
            if (isnan(value))
                continue;
            if (zfed_f32_to_f16(value) != s_hardware_f16(value) && mismatches++ < 5)
                fprintf(stderr, "f32 %a: got %04x, F16C %04x\n", value, zfed_f32_to_f16(value),
                        s_hardware_f16(value));
        }
        CHECK_INT(mismatches, 0);
    }
#endif
    (void)hardware;
}

//  Round to nearest even by integer arithmetic: the usual BF16 trick.
static uint16_t s_reference_bf16(float value)
{
    uint32_t bits = s_bits32(value);
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

static void test_bf16(void)
{
    for (uint32_t bf16 = 0; bf16 <= 0xffff; bf16++) {
        float wide = zfed_bf16_to_f32((uint16_t)bf16);
        CHECK(s_bits32(wide) == bf16 << 16);
        if (isnan(wide)) {
            uint16_t back = zfed_f32_to_bf16(wide);
            CHECK(isnan(zfed_bf16_to_f32(back)) && (back >> 15) == (bf16 >> 15));
            continue;
        }
        CHECK_INT(zfed_f32_to_bf16(wide), bf16);
        CHECK_INT(zfed_f64_to_bf16(zfed_bf16_to_f64((uint16_t)bf16)), bf16);
    }
    uint64_t state = 32;
    int mismatches = 0;
    for (int trial = 0; trial < 2000000; trial++) {
        float value = s_float((uint32_t)zfed_test_random(&state));
        if (isnan(value))
            continue;
        if (zfed_f32_to_bf16(value) != s_reference_bf16(value) && mismatches++ < 5)
            fprintf(stderr, "f32 %a: got %04x, expected %04x\n", value, zfed_f32_to_bf16(value),
                    s_reference_bf16(value));
    }
    CHECK_INT(mismatches, 0);
    CHECK_INT(zfed_f32_to_bf16(FLT_MAX), 0x7f80);        //  rounds up past the largest
    CHECK_INT(zfed_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); //  tie to even
    CHECK_INT(zfed_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
}

//  Doubles to F16 and BF16 against GMP (every exponent, and near ties).
static void test_from_f64(void)
{
    uint64_t state = 64;
    mpq_t exact;
    mpq_init(exact);
    int mismatches = 0;
    for (int trial = 0; trial < 200000; trial++) {
        uint64_t bits = zfed_test_random(&state);
        if (trial % 2) //  near the two formats' ranges
            bits = (bits & 0x80ffffffffffffffULL) | 0x3e00000000000000ULL;
        if (trial % 4 == 1) //  a tie or a hair off one
            bits &= ~0x000000ffffffffffULL;
        double value;
        memcpy(&value, &bits, sizeof value);
        if (!isfinite(value))
            continue;
        mpq_set_d(exact, value);
        static const zfed_dtype_t dtypes[] = {ZFED_DTYPE_F16, ZFED_DTYPE_BF16};
        for (int d = 0; d < 2; d++) {
            double expected;
            bool overflow = zfed_test_reference_float(exact, dtypes[d], &expected) != 0;
            uint16_t got = d == 0 ? zfed_f64_to_f16(value) : zfed_f64_to_bf16(value);
            double back = d == 0 ? zfed_f16_to_f64(got) : zfed_bf16_to_f64(got);
            bool ok = overflow ? isinf(back) && signbit(back) == signbit(value)
                               : memcmp(&back, &expected, sizeof back) == 0;
            if (!ok && mismatches++ < 5)
                fprintf(stderr, "f64 %a to %s: got %a, expected %a\n", value,
                        zfed_dtype_name(dtypes[d]), back, expected);
        }
    }
    CHECK_INT(mismatches, 0);
    mpq_clear(exact);
    CHECK(isnan(zfed_f16_to_f64(zfed_f64_to_f16(-NAN))));
    CHECK(zfed_f64_to_f16(-NAN) >> 15 == 1);
    CHECK_INT(zfed_f64_to_bf16(-0.0), 0x8000);
    CHECK_INT(zfed_f64_to_bf16(1e300), 0x7f80);
}

static void test_finite(void)
{
    size_t count = 10000;
    static const zfed_dtype_t dtypes[] = {ZFED_DTYPE_F64, ZFED_DTYPE_F32, ZFED_DTYPE_F16,
                                          ZFED_DTYPE_BF16};
    static const size_t positions[] = {0, 1, 4095, 4096, 4097, 9999};
    for (size_t d = 0; d < 4; d++) {
        zfed_dtype_t dtype = dtypes[d];
        size_t size = zfed_dtype_size(dtype);
        uint8_t *data = calloc(count, size);
        //  Large finite values everywhere: exponent one below all ones.
        for (size_t i = 0; i < count; i++) {
            double big = i % 2 ? -1e300 : 1e300;
            uint64_t bits;
            switch (dtype) {
            case ZFED_DTYPE_F64:
                memcpy(&bits, &big, 8);
                break;
            case ZFED_DTYPE_F32:
                bits = s_bits32(i % 2 ? -FLT_MAX : FLT_MAX);
                break;
            case ZFED_DTYPE_F16:
                bits = i % 2 ? 0xfbff : 0x7bff;
                break;
            default:
                bits = i % 2 ? 0xff7f : 0x7f7f;
                break;
            }
            memcpy(data + i * size, &bits, size);
        }
        size_t index = 12345;
        CHECK(zfed_dtype_check_finite(dtype, data, count, &index) == ZFED_FINITE);
        CHECK(index == 12345);
        CHECK(zfed_dtype_check_finite(dtype, data, 0, &index) == ZFED_FINITE);
        for (size_t p = 0; p < sizeof positions / sizeof *positions; p++) {
            uint8_t saved[8];
            memcpy(saved, data + positions[p] * size, size);
            static const double bad[] = {NAN, INFINITY, -INFINITY};
            static const zfed_finite_t kinds[] = {ZFED_NAN, ZFED_POS_INF, ZFED_NEG_INF};
            for (int b = 0; b < 3; b++) {
                uint64_t bits;
                switch (dtype) {
                case ZFED_DTYPE_F64:
                    memcpy(&bits, &bad[b], 8);
                    break;
                case ZFED_DTYPE_F32:
                    bits = s_bits32((float)bad[b]);
                    break;
                case ZFED_DTYPE_F16:
                    bits = zfed_f64_to_f16(bad[b]);
                    break;
                default:
                    bits = zfed_f64_to_bf16(bad[b]);
                    break;
                }
                memcpy(data + positions[p] * size, &bits, size);
                CHECK(zfed_dtype_check_finite(dtype, data, count, &index) == kinds[b]);
                CHECK(index == positions[p]);
            }
            memcpy(data + positions[p] * size, saved, size);
        }
        free(data);
    }
    uint8_t ones[16];
    memset(ones, 0xff, sizeof ones);
    size_t index;
    CHECK(zfed_dtype_check_finite(ZFED_DTYPE_U64, ones, 2, &index) == ZFED_FINITE);
    CHECK(zfed_dtype_check_finite(ZFED_DTYPE_F32, ones, 4, &index) == ZFED_NAN && index == 0);
    CHECK_STR(zfed_finite_name(ZFED_NAN), "NaN");
    CHECK_STR(zfed_finite_name(ZFED_NEG_INF), "-Inf");
}

static void test_get_f64(void)
{
    int8_t i8[] = {-128, 127};
    uint64_t u64[] = {UINT64_MAX, 1};
    int64_t i64[] = {INT64_MIN, -1};
    uint16_t f16[] = {0xc000, 0x3555};
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_I8, i8, 0) == -128.0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_U64, u64, 0) == 18446744073709551616.0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_I64, i64, 0) == -9223372036854775808.0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_I64, i64, 1) == -1.0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_F16, f16, 0) == -2.0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_F16, f16, 1) == 0x1.554p-2);
}

static void test_set_f64(void)
{
    uint8_t bytes[16];
    memset(bytes, 0xab, sizeof bytes);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_F32, bytes, 1, 0.1) == 0);
    float f32;
    memcpy(&f32, bytes + 4, 4);
    CHECK(f32 == 0.1f && bytes[0] == 0xab && bytes[8] == 0xab);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_F16, bytes, 0, 70000.0) == -1); //  past 65504
    CHECK(bytes[0] == 0xab && bytes[1] == 0xab);                        //  nothing stored
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_BF16, bytes, 0, 1.0 + 0x1p-8) == 0);
    CHECK(bytes[0] == 0x80 && bytes[1] == 0x3f); //  the tie to even: 1.0
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_F64, bytes, 0, NAN) == -1);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_I8, bytes, 0, -128.0) == 0 && (int8_t)bytes[0] == -128);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_I8, bytes, 0, 128.0) == -1);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_U16, bytes, 0, 1.5) == -1);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_U8, bytes, 0, -1.0) == -1);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_U64, bytes, 0, 18446744073709551616.0) == -1);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_U64, bytes, 0, 9223372036854775808.0) == 0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_U64, bytes, 0) == 9223372036854775808.0);
    CHECK(zfed_dtype_set_f64(ZFED_DTYPE_I64, bytes, 1, -9223372036854775808.0) == 0);
    CHECK(zfed_dtype_get_f64(ZFED_DTYPE_I64, bytes, 1) == -9223372036854775808.0);
}

int main(void)
{
    test_set_f64();
    test_names();
    test_f16();
    test_bf16();
    test_from_f64();
    test_finite();
    test_get_f64();
    ZFED_TEST_END();
}
