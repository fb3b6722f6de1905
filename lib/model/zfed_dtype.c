/*  zfed_dtype - element types, exact conversions, finiteness.  */
#include "zfed/zfed_model.h"
#include "model/zfed_rounding.h"

#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "zfed models are little-endian and used in place: a big-endian host needs byte swaps"
#endif

static const struct {
    const char *name;
    size_t size;
    bool is_float;
    bool is_signed;
} s_dtypes[ZFED_DTYPE_COUNT] = {
    [ZFED_DTYPE_F64] = {"F64", 8, true, true},   [ZFED_DTYPE_F32] = {"F32", 4, true, true},
    [ZFED_DTYPE_F16] = {"F16", 2, true, true},   [ZFED_DTYPE_BF16] = {"BF16", 2, true, true},
    [ZFED_DTYPE_I64] = {"I64", 8, false, true},  [ZFED_DTYPE_I32] = {"I32", 4, false, true},
    [ZFED_DTYPE_I16] = {"I16", 2, false, true},  [ZFED_DTYPE_I8] = {"I8", 1, false, true},
    [ZFED_DTYPE_U64] = {"U64", 8, false, false}, [ZFED_DTYPE_U32] = {"U32", 4, false, false},
    [ZFED_DTYPE_U16] = {"U16", 2, false, false}, [ZFED_DTYPE_U8] = {"U8", 1, false, false},
};

static bool s_valid(zfed_dtype_t dtype)
{
    return (unsigned)dtype < ZFED_DTYPE_COUNT;
}

size_t zfed_dtype_size(zfed_dtype_t dtype)
{
    return s_valid(dtype) ? s_dtypes[dtype].size : 0;
}

const char *zfed_dtype_name(zfed_dtype_t dtype)
{
    return s_valid(dtype) ? s_dtypes[dtype].name : "unknown";
}

int zfed_dtype_parse(const char *name, zfed_dtype_t *dtype)
{
    for (int index = 0; name && index < ZFED_DTYPE_COUNT; index++)
        if (strcmp(name, s_dtypes[index].name) == 0) {
            *dtype = (zfed_dtype_t)index;
            return 0;
        }
    return -1;
}

const char *zfed_dtype_list(void)
{
    return "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8";
}

bool zfed_dtype_is_float(zfed_dtype_t dtype)
{
    return s_valid(dtype) && s_dtypes[dtype].is_float;
}

bool zfed_dtype_is_signed(zfed_dtype_t dtype)
{
    return s_valid(dtype) && s_dtypes[dtype].is_signed;
}

// --------------------------------------------------------------------------
//  Conversions

static float s_f32_from_bits(uint32_t bits)
{
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

float zfed_f16_to_f32(uint16_t half)
{
    uint32_t sign = (uint32_t)(half >> 15) << 31;
    uint32_t exponent = (half >> 10) & 0x1f;
    uint32_t fraction = half & 0x3ff;
    if (exponent == 0x1f) //  infinity or NaN, payload kept
        return s_f32_from_bits(sign | 0x7f800000u | (fraction << 13));
    if (exponent == 0) { //  zero or subnormal: fraction * 2^-24, exact
        float magnitude = (float)fraction * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    return s_f32_from_bits(sign | ((exponent - 15 + 127) << 23) | (fraction << 13));
}

double zfed_f16_to_f64(uint16_t half)
{
    return (double)zfed_f16_to_f32(half);
}

float zfed_bf16_to_f32(uint16_t bf16)
{
    return s_f32_from_bits((uint32_t)bf16 << 16);
}

double zfed_bf16_to_f64(uint16_t bf16)
{
    return (double)zfed_bf16_to_f32(bf16);
}

//  Rounds a double once into the 16-bit dtype: IEEE conversion semantics.
static uint16_t s_narrow16(double value, zfed_dtype_t dtype)
{
    bool f16 = dtype == ZFED_DTYPE_F16;
    uint16_t sign = signbit(value) ? 0x8000 : 0;
    uint16_t infinity = f16 ? 0x7c00 : 0x7f80;
    if (isnan(value)) {
        //  Quiet NaN of the same sign, with the top payload bits.
        uint64_t bits;
        memcpy(&bits, &value, sizeof bits);
        uint16_t quiet = f16 ? 0x0200 : 0x0040;
        uint16_t payload = f16 ? (uint16_t)((bits >> 42) & 0x3ff) : (uint16_t)((bits >> 45) & 0x7f);
        return sign | infinity | quiet | payload;
    }
    if (isinf(value))
        return sign | infinity;
    if (value == 0)
        return sign;
    bool neg;
    uint64_t mantissa;
    int64_t exp2;
    zfed_rounding_split_f64(value, &neg, &mantissa, &exp2);
    uint64_t bits;
    if (zfed_rounding_bits(neg, mantissa, false, exp2, dtype, &bits) != ZFED_ROUNDING_OK)
        return sign | infinity;
    return (uint16_t)bits;
}

uint16_t zfed_f32_to_f16(float value)
{
    return s_narrow16((double)value, ZFED_DTYPE_F16); //  float -> double is exact
}

uint16_t zfed_f64_to_f16(double value)
{
    return s_narrow16(value, ZFED_DTYPE_F16);
}

uint16_t zfed_f32_to_bf16(float value)
{
    return s_narrow16((double)value, ZFED_DTYPE_BF16);
}

uint16_t zfed_f64_to_bf16(double value)
{
    return s_narrow16(value, ZFED_DTYPE_BF16);
}

double zfed_dtype_get_f64(zfed_dtype_t dtype, const void *data, size_t index)
{
    const uint8_t *at = (const uint8_t *)data + index * zfed_dtype_size(dtype);
    union {
        double f64;
        float f32;
        uint16_t u16;
        int64_t i64;
        int32_t i32;
        int16_t i16;
        int8_t i8;
        uint64_t u64;
        uint32_t u32;
        uint8_t u8;
    } value;
    memcpy(&value, at, zfed_dtype_size(dtype));
    switch (dtype) {
    case ZFED_DTYPE_F64:
        return value.f64;
    case ZFED_DTYPE_F32:
        return value.f32;
    case ZFED_DTYPE_F16:
        return zfed_f16_to_f64(value.u16);
    case ZFED_DTYPE_BF16:
        return zfed_bf16_to_f64(value.u16);
    case ZFED_DTYPE_I64:
        return (double)value.i64;
    case ZFED_DTYPE_I32:
        return value.i32;
    case ZFED_DTYPE_I16:
        return value.i16;
    case ZFED_DTYPE_I8:
        return value.i8;
    case ZFED_DTYPE_U64:
        return (double)value.u64;
    case ZFED_DTYPE_U32:
        return value.u32;
    case ZFED_DTYPE_U16:
        return value.u16;
    case ZFED_DTYPE_U8:
        return value.u8;
    default:
        return NAN;
    }
}

int zfed_dtype_set_f64(zfed_dtype_t dtype, void *data, size_t index, double value)
{
    size_t size = zfed_dtype_size(dtype);
    uint64_t bits;
    switch (dtype) {
    case ZFED_DTYPE_F64:
        memcpy(&bits, &value, sizeof bits);
        break;
    case ZFED_DTYPE_F32: {
        float narrow = (float)value; //  C rounds to nearest, ties to even
        uint32_t narrow_bits;
        memcpy(&narrow_bits, &narrow, sizeof narrow_bits);
        bits = narrow_bits;
        break;
    }
    case ZFED_DTYPE_F16:
        bits = zfed_f64_to_f16(value);
        break;
    case ZFED_DTYPE_BF16:
        bits = zfed_f64_to_bf16(value);
        break;
    default: {
        if (size == 0 || value != floor(value))
            return -1;
        int width = 8 * (int)size;
        bool is_signed = zfed_dtype_is_signed(dtype);
        double low = is_signed ? -ldexp(1, width - 1) : 0;
        double high = ldexp(1, is_signed ? width - 1 : width); //  exclusive
        if (!(value >= low && value < high))
            return -1;
        bits = value < 0 ? (uint64_t)(int64_t)value : (uint64_t)value;
        break;
    }
    }
    uint8_t *at = (uint8_t *)data + index * size;
    uint64_t before = 0;
    memcpy(&before, at, size);
    memcpy(at, &bits, size);
    if (zfed_dtype_is_float(dtype) && !isfinite(zfed_dtype_get_f64(dtype, data, index))) {
        memcpy(at, &before, size); //  nothing stored
        return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
//  Finiteness

const char *zfed_finite_name(zfed_finite_t kind)
{
    switch (kind) {
    case ZFED_NAN:
        return "NaN";
    case ZFED_POS_INF:
        return "+Inf";
    case ZFED_NEG_INF:
        return "-Inf";
    default:
        return "finite";
    }
}

//  Elements looked at between checks for a bad one: the loop over a block
//  has no early exit, so compilers vectorise it.
#define FINITE_BLOCK 4096

//  Infinity or NaN, for bits whose exponent is all ones.
static zfed_finite_t s_kind(uint64_t bits, uint64_t fraction, int sign_shift)
{
    if (bits & fraction)
        return ZFED_NAN;
    return (bits >> sign_shift) & 1 ? ZFED_NEG_INF : ZFED_POS_INF;
}

//  One loop per width: exponent all ones marks infinity or NaN.  Adding
//  the lowest exponent bit to an all-ones exponent carries into the sign
//  place, which is how a whole block is judged without branches.
#define FINITE_LOOP(type, EXPONENT, LOW_BIT, SIGN_BIT, FRACTION, SIGN_SHIFT)                       \
    do {                                                                                           \
        const uint8_t *bytes = data;                                                               \
        for (size_t start = 0; start < count; start += FINITE_BLOCK) {                             \
            size_t end = count - start < FINITE_BLOCK ? count : start + FINITE_BLOCK;              \
            type bad = 0;                                                                          \
            for (size_t at = start; at < end; at++) {                                              \
                type element;                                                                      \
                memcpy(&element, bytes + at * sizeof(type), sizeof(type));                         \
                bad |= (type)((element & (EXPONENT)) + (LOW_BIT));                                 \
            }                                                                                      \
            if (!(bad & (SIGN_BIT)))                                                               \
                continue;                                                                          \
            for (size_t at = start; at < end; at++) {                                              \
                type element;                                                                      \
                memcpy(&element, bytes + at * sizeof(type), sizeof(type));                         \
                if ((element & (EXPONENT)) == (EXPONENT)) {                                        \
                    *index = at;                                                                   \
                    return s_kind(element, FRACTION, SIGN_SHIFT);                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

zfed_finite_t zfed_dtype_check_finite(zfed_dtype_t dtype, const void *data, size_t count,
                                      size_t *index)
{
    switch (dtype) {
    case ZFED_DTYPE_F64:
        FINITE_LOOP(uint64_t, 0x7ff0000000000000ULL, 0x0010000000000000ULL, 1ULL << 63,
                    0x000fffffffffffffULL, 63);
        break;
    case ZFED_DTYPE_F32:
        FINITE_LOOP(uint32_t, 0x7f800000u, 0x00800000u, 1u << 31, 0x007fffffu, 31);
        break;
    case ZFED_DTYPE_F16:
        FINITE_LOOP(uint16_t, 0x7c00u, 0x0400u, 0x8000u, 0x03ffu, 15);
        break;
    case ZFED_DTYPE_BF16:
        FINITE_LOOP(uint16_t, 0x7f80u, 0x0080u, 0x8000u, 0x007fu, 15);
        break;
    default:
        break; //  integers are finite
    }
    return ZFED_FINITE;
}
