/*  zfed_msg - encode and decode the zfed message bodies (protocol v1).

    Decoding runs in two passes.  zfed_msgpack_check walks the raw bytes
    first and refuses anything whose headers promise more elements than
    there are bytes, that nests too deep or that holds more than
    ZFED_VALUES_MAX values; only then is an object tree built (msgpack-c's
    msgpack_object, by a cursor over the checked bytes, zfed_tree_build),
    so a 5-byte message can never make it allocate gigabytes, nor a 4 MiB
    one a hundred megabytes.  The tree is then checked element by element against the
    layout of its kind, and service-defined parts (params, outputs, global
    value) are re-encoded into canonical bytes the message owns.
*/
#include "zfed/zfed_msg.h"
#include "zfed/zfed_util.h"
#include "wire/zfed_peek.h"
#include "wire/zfed_msg_private.h"
#include "wire/zfed_tree.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Most keys a params or outputs map may have.  Duplicate detection is a
//  pairwise compare, O(n^2), which this bound keeps trivial.
#define MAP_KEYS_MAX 256

//  Elements of each kind's top-level array.
#define TASK_ELEMENTS   8
#define RESULT_ELEMENTS 9
#define ERROR_ELEMENTS  10

//  Lowest and highest acceptable error codes.
#define ERROR_CODE_MIN 100
#define ERROR_CODE_MAX 599

typedef struct {
    uint8_t *data;
    size_t size;
} s_blob_t;

//  A service-defined part (params, global value, outputs), held in
//  whichever form it arrived in and turned into the other only if asked:
//  a decoded message has the object (a view into its tree) and packs bytes
//  on demand; a constructed one has the bytes and unpacks on demand.  The
//  worker and controller read objects, so on their hot paths nothing is
//  packed or unpacked twice.
typedef struct {
    s_blob_t bytes;
    const msgpack_object *object;
    msgpack_unpacked unpacked; //  backs object when unpacked from bytes
    bool unpacked_used;
} s_part_t;

struct _zfed_msg_t {
    zfed_msg_kind_t kind;
    uint32_t round;
    uint32_t task_id;
    uint32_t attempt;
    //  task
    s_part_t params;
    int64_t global_round;
    s_part_t global_value;
    //  result and error
    uint64_t compute_us;
    s_part_t outputs;
    //  A decoded message is one block: this struct, then the object tree
    //  its parts view, then the body's bytes (zfed_tree_build).
    uint32_t error_code;
    //  A decoded message's block, in bytes (0 for a constructed one): what
    //  zfed_msg_decode_into may reuse.
    size_t block_size;
    //  The texts last: a decode clears everything before them and their
    //  first bytes (s_clear), not their 900 bytes of room.
    char job_id[ZFED_JOB_ID_MAX + 1];
    char worker[ZFED_WORKER_NAME_MAX + 1];
    char error_field[ZFED_FIELD_MAX + 1];
    char error_text[ZFED_ERROR_TEXT_MAX + 1];
};

static void s_reason(char *reason, size_t reason_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void s_reason(char *reason, size_t reason_size, const char *format, ...)
{
    if (!reason || reason_size == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(reason, reason_size, format, args);
    va_end(args);
}

const char *zfed_msgpack_type_name(int type)
{
    switch (type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return "positive int";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "negative int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    default:
        return "unknown";
    }
}

//  ---------------------------------------------------------------------
//  Structural pre-check of raw msgpack bytes

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
    int max_depth;
    size_t values; //  values met so far, at any depth (ZFED_VALUES_MAX)
    char *reason;
    size_t reason_size;
} s_scanner_t;

//  Bytes that follow the cursor.
static size_t s_left(const s_scanner_t *scan)
{
    return scan->size - scan->position;
}

static int s_truncated(s_scanner_t *scan)
{
    s_reason(scan->reason, scan->reason_size, "msgpack truncated at byte %zu", scan->position);
    return -1;
}

static int s_take(s_scanner_t *scan, uint64_t count)
{
    if (s_left(scan) < count)
        return s_truncated(scan);
    scan->position += (size_t)count;
    return 0;
}

//  Reads a big-endian length of width bytes at the cursor.
static int s_take_length(s_scanner_t *scan, size_t width, uint64_t *length)
{
    if (s_left(scan) < width)
        return s_truncated(scan);
    *length = 0;
    for (size_t index = 0; index < width; index++)
        *length = (*length << 8) | scan->data[scan->position + index];
    scan->position += width;
    return 0;
}

//  Well-formed UTF-8: no overlong forms, no surrogates, nothing past
//  U+10FFFF.  msgpack says str is UTF-8; peers in other languages rely on it.
static bool s_utf8_valid(const uint8_t *text, size_t length)
{
    size_t index = 0;
    while (index < length) {
        //  Runs of ASCII (all of zfed's own strings) go eight bytes at a time.
        while (length - index >= sizeof(uint64_t)) {
            uint64_t word;
            memcpy(&word, text + index, sizeof word);
            if (word & 0x8080808080808080ULL)
                break;
            index += sizeof word;
        }
        if (index >= length)
            break;
        uint8_t lead = text[index];
        size_t extra;
        uint32_t point;
        if (lead < 0x80) {
            index++;
            continue;
        } else if (lead >= 0xc2 && lead <= 0xdf)
            extra = 1, point = lead & 0x1f;
        else if (lead >= 0xe0 && lead <= 0xef)
            extra = 2, point = lead & 0x0f;
        else if (lead >= 0xf0 && lead <= 0xf4)
            extra = 3, point = lead & 0x07;
        else
            return false;
        if (length - index <= extra)
            return false;
        for (size_t next = 1; next <= extra; next++) {
            if ((text[index + next] & 0xc0) != 0x80)
                return false;
            point = (point << 6) | (text[index + next] & 0x3f);
        }
        if ((extra == 2 && (point < 0x800 || (point >= 0xd800 && point <= 0xdfff))) ||
            (extra == 3 && (point < 0x10000 || point > 0x10ffff)))
            return false;
        index += extra + 1;
    }
    return true;
}

static int s_scan_string(s_scanner_t *scan, uint64_t length)
{
    size_t start = scan->position;
    if (s_take(scan, length) != 0)
        return -1;
    if (!s_utf8_valid(scan->data + start, (size_t)length)) {
        s_reason(scan->reason, scan->reason_size, "string at byte %zu is not valid UTF-8", start);
        return -1;
    }
    return 0;
}

static int s_scan_value(s_scanner_t *scan, int depth, bool is_key);

static int s_scan_container(s_scanner_t *scan, uint64_t count, bool is_map, int depth)
{
    if (depth >= scan->max_depth) {
        s_reason(scan->reason, scan->reason_size, "msgpack nesting deeper than %d",
                 scan->max_depth);
        return -1;
    }
    //  Every element takes at least one byte, so a count larger than what
    //  is left is a lie we can refuse before anyone allocates for it.
    uint64_t elements = is_map ? 2 * count : count;
    if (elements > s_left(scan)) {
        s_reason(scan->reason, scan->reason_size,
                 "msgpack container claims %llu elements but only %zu bytes follow",
                 (unsigned long long)elements, s_left(scan));
        return -1;
    }
    for (uint64_t index = 0; index < elements; index++)
        if (s_scan_value(scan, depth + 1, is_map && index % 2 == 0) != 0)
            return -1;
    return 0;
}

//  Bytes after the head of fixed-size types: ints, floats, fixext.
static int s_fixed_payload(uint8_t head)
{
    switch (head) {
    case 0xcc:
    case 0xd0:
        return 1;
    case 0xcd:
    case 0xd1:
    case 0xd4:
        return 2;
    case 0xd5:
        return 3;
    case 0xce:
    case 0xd2:
    case 0xca:
        return 4;
    case 0xd6:
        return 5;
    case 0xcf:
    case 0xd3:
    case 0xcb:
        return 8;
    case 0xd7:
        return 9;
    case 0xd8:
        return 17;
    default:
        return -1;
    }
}

static int s_scan_value(s_scanner_t *scan, int depth, bool is_key)
{
    if (s_left(scan) == 0)
        return s_truncated(scan);
    //  msgpack-c spends a msgpack_object (24 bytes) on every value it
    //  builds, so the count, not the size, is what bounds a decoder's
    //  memory: 4 MiB of fixints would otherwise cost about 100 MB.
    if (++scan->values > ZFED_VALUES_MAX) {
        s_reason(scan->reason, scan->reason_size, "msgpack body holds more than %d values",
                 ZFED_VALUES_MAX);
        return -1;
    }
    uint8_t head = scan->data[scan->position++];
    uint64_t length = 0;
    bool is_string = (head >= 0xa0 && head <= 0xbf) || (head >= 0xd9 && head <= 0xdb);
    if (is_key && !is_string) {
        s_reason(scan->reason, scan->reason_size, "map key at byte %zu is not a string",
                 scan->position - 1);
        return -1;
    }
    if (head <= 0x7f || head >= 0xe0 || head == 0xc0 || head == 0xc2 || head == 0xc3)
        return 0; //  fixints, nil, booleans: the head is the value
    if (head >= 0xa0 && head <= 0xbf)
        return s_scan_string(scan, head & 0x1f);
    if (head >= 0x90 && head <= 0x9f)
        return s_scan_container(scan, head & 0x0f, false, depth);
    if (head >= 0x80 && head <= 0x8f)
        return s_scan_container(scan, head & 0x0f, true, depth);
    int fixed = s_fixed_payload(head);
    if (fixed >= 0)
        return s_take(scan, (uint64_t)fixed);
    //  Variable lengths: 1, 2 or 4 length bytes by the low bits of the head.
    static const size_t widths[] = {1, 2, 4};
    switch (head) {
    case 0xd9:
    case 0xda:
    case 0xdb:
        return s_take_length(scan, widths[head - 0xd9], &length) ?: s_scan_string(scan, length);
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return s_take_length(scan, widths[head - 0xc4], &length) ?: s_take(scan, length);
    case 0xc7:
    case 0xc8:
    case 0xc9: //  ext: a type byte after the length
        return s_take_length(scan, widths[head - 0xc7], &length) ?: s_take(scan, length + 1);
    case 0xdc:
    case 0xdd:
        return s_take_length(scan, head == 0xdc ? 2 : 4, &length)
                   ?: s_scan_container(scan, length, false, depth);
    case 0xde:
    case 0xdf:
        return s_take_length(scan, head == 0xde ? 2 : 4, &length)
                   ?: s_scan_container(scan, length, true, depth);
    default: //  0xc1 is reserved and never valid
        s_reason(scan->reason, scan->reason_size, "invalid msgpack byte 0x%02x at %zu", head,
                 scan->position - 1);
        return -1;
    }
}

//  zfed_msgpack_check with an explicit nesting budget: a part that will sit
//  inside a body gets what the body leaves it.
static int s_check(const void *data, size_t size, int max_depth, size_t *values, char *reason,
                   size_t reason_size)
{
    char ignored[8];
    if (!reason || reason_size == 0) {
        reason = ignored;
        reason_size = sizeof ignored;
    }
    if (!data || size == 0) {
        s_reason(reason, reason_size, "empty body");
        return -1;
    }
    s_scanner_t scan = {data, size, 0, max_depth, 0, reason, reason_size};
    if (s_scan_value(&scan, 0, false) != 0)
        return -1;
    if (scan.position != size) {
        s_reason(reason, reason_size, "%zu trailing bytes after the msgpack value",
                 size - scan.position);
        return -1;
    }
    if (values)
        *values = scan.values;
    return 0;
}

int zfed_msgpack_check(const void *data, size_t size, char *reason, size_t reason_size)
{
    return s_check(data, size, ZFED_NESTING_MAX, NULL, reason, reason_size);
}

//  ---------------------------------------------------------------------
//  The object tree of checked bytes
//
//  What msgpack_unpack builds, built here from bytes s_check has passed:
//  a cursor over them, no bounds checks (the scan made every one), the
//  objects in one array of exactly the values the scan counted, filled
//  breadth-first as msgpack-c's zone is (a container's elements side by
//  side, a map's as key-value pairs).  For a result of the fib service
//  msgpack-c's unpack and its zone were 2,600 of the 5,600 instructions
//  of a decode, and three allocations.

typedef struct {
    const uint8_t *at;
    msgpack_object *next; //  the first object not handed out
} s_builder_t;

static uint64_t s_big_endian(s_builder_t *build, size_t width)
{
    uint64_t value = 0;
    for (size_t index = 0; index < width; index++)
        value = (value << 8) | build->at[index];
    build->at += width;
    return value;
}

static void s_build_value(s_builder_t *build, msgpack_object *object);

static void s_build_bytes(s_builder_t *build, msgpack_object *object, msgpack_object_type type,
                          size_t length)
{
    object->type = type;
    object->via.str.size = (uint32_t)length; //  str and bin views are laid out alike
    object->via.str.ptr = (const char *)build->at;
    build->at += length;
}

static void s_build_ext(s_builder_t *build, msgpack_object *object, size_t length)
{
    object->type = MSGPACK_OBJECT_EXT;
    object->via.ext.type = (int8_t)*build->at++;
    object->via.ext.size = (uint32_t)length;
    object->via.ext.ptr = (const char *)build->at;
    build->at += length;
}

static void s_build_array(s_builder_t *build, msgpack_object *object, size_t count)
{
    object->type = MSGPACK_OBJECT_ARRAY;
    object->via.array.size = (uint32_t)count;
    object->via.array.ptr = build->next;
    build->next += count;
    for (size_t index = 0; index < count; index++)
        s_build_value(build, &object->via.array.ptr[index]);
}

static void s_build_map(s_builder_t *build, msgpack_object *object, size_t count)
{
    object->type = MSGPACK_OBJECT_MAP;
    object->via.map.size = (uint32_t)count;
    object->via.map.ptr = (msgpack_object_kv *)build->next;
    build->next += 2 * count;
    for (size_t index = 0; index < count; index++) {
        s_build_value(build, &object->via.map.ptr[index].key);
        s_build_value(build, &object->via.map.ptr[index].val);
    }
}

//  A signed integer as msgpack-c reads it: positive when it is not negative.
static void s_build_signed(msgpack_object *object, int64_t value)
{
    if (value >= 0) {
        object->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        object->via.u64 = (uint64_t)value;
    } else {
        object->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        object->via.i64 = value;
    }
}

static void s_build_value(s_builder_t *build, msgpack_object *object)
{
    static const size_t widths[] = {1, 2, 4, 8};
    uint8_t head = *build->at++;
    if (head <= 0x7f || head >= 0xe0) {
        s_build_signed(object, (int8_t)head);
        return;
    }
    if (head >= 0xa0 && head <= 0xbf) {
        s_build_bytes(build, object, MSGPACK_OBJECT_STR, head & 0x1f);
        return;
    }
    if (head >= 0x90 && head <= 0x9f) {
        s_build_array(build, object, head & 0x0f);
        return;
    }
    if (head >= 0x80 && head <= 0x8f) {
        s_build_map(build, object, head & 0x0f);
        return;
    }
    switch (head) {
    case 0xc0:
        object->type = MSGPACK_OBJECT_NIL;
        break;
    case 0xc2:
    case 0xc3:
        object->type = MSGPACK_OBJECT_BOOLEAN;
        object->via.boolean = head == 0xc3;
        break;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        s_build_bytes(build, object, MSGPACK_OBJECT_BIN,
                      (size_t)s_big_endian(build, widths[head - 0xc4]));
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        s_build_ext(build, object, (size_t)s_big_endian(build, widths[head - 0xc7]));
        break;
    case 0xca: {
        uint32_t bits = (uint32_t)s_big_endian(build, 4);
        float value;
        memcpy(&value, &bits, sizeof value);
        object->type = MSGPACK_OBJECT_FLOAT32;
        object->via.f64 = value;
        break;
    }
    case 0xcb: {
        uint64_t bits = s_big_endian(build, 8);
        object->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&object->via.f64, &bits, sizeof bits);
        break;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        object->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        object->via.u64 = s_big_endian(build, widths[head - 0xcc]);
        break;
    case 0xd0:
        s_build_signed(object, (int8_t)s_big_endian(build, 1));
        break;
    case 0xd1:
        s_build_signed(object, (int16_t)s_big_endian(build, 2));
        break;
    case 0xd2:
        s_build_signed(object, (int32_t)s_big_endian(build, 4));
        break;
    case 0xd3:
        s_build_signed(object, (int64_t)s_big_endian(build, 8));
        break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        s_build_ext(build, object, (size_t)1 << (head - 0xd4));
        break;
    case 0xd9:
    case 0xda:
    case 0xdb:
        s_build_bytes(build, object, MSGPACK_OBJECT_STR,
                      (size_t)s_big_endian(build, widths[head - 0xd9]));
        break;
    case 0xdc:
    case 0xdd:
        s_build_array(build, object, (size_t)s_big_endian(build, head == 0xdc ? 2 : 4));
        break;
    default: //  0xde, 0xdf: nothing else passes the scan
        s_build_map(build, object, (size_t)s_big_endian(build, head == 0xde ? 2 : 4));
        break;
    }
}

//  Bytes before the tree in a block of zfed_tree_build: prefix, rounded
//  up for the objects' alignment.
static size_t s_tree_offset(size_t prefix)
{
    size_t align = _Alignof(msgpack_object);
    return (prefix + align - 1) / align * align;
}

//  ---------------------------------------------------------------------
//  One pass: the scan's checks and the builder's objects at once
//
//  Most bodies (every task and result of a value service) hold a few
//  dozen values: they are checked and built in one walk into objects on
//  the stack, then copied into the block with their views moved there.
//  Anything this walk does not take (more values than the stack holds, an
//  ext, a body that fails a check) goes the two-pass way, which accepts
//  or refuses it and says why: this walk accepts only what the scan
//  accepts, and builds what the builder builds.

//  Objects the one pass holds; more go the two-pass way.
#define QUICK_OBJECTS_MAX 128
_Static_assert(QUICK_OBJECTS_MAX <= ZFED_VALUES_MAX, "the one pass is within the value limit");

//  Largest body the one pass is tried on: past it a refused walk's copy
//  would cost more than it saves (a big body's values are bins, which
//  the scan passes in a step anyway).
#define QUICK_BODY_MAX 16384

//  A recycled block is reused for a body needing at least 1/this of it.
#define QUICK_SPARE_SLACK 2

//  Strings up to this long are tested for ASCII a byte at a time, inline.
#define QUICK_ASCII_MAX 16

typedef struct {
    const uint8_t *at;
    const uint8_t *end;
    msgpack_object *next;  //  the first object not handed out
    msgpack_object *limit; //  the end of the objects
    int max_depth;         //  containers the walked value may nest (s_check's budget)
} s_quick_t;

//  A big-endian number of width bytes at the cursor, if they are there.
static bool s_quick_number(s_quick_t *quick, size_t width, uint64_t *value)
{
    if ((size_t)(quick->end - quick->at) < width)
        return false;
    uint64_t number = 0;
    for (size_t index = 0; index < width; index++)
        number = (number << 8) | quick->at[index];
    quick->at += width;
    *value = number;
    return true;
}

static bool s_quick_bytes(s_quick_t *quick, msgpack_object *object, msgpack_object_type type,
                          uint64_t length)
{
    if ((uint64_t)(quick->end - quick->at) < length)
        return false;
    const uint8_t *text = quick->at;
    if (type == MSGPACK_OBJECT_STR) {
        bool valid;
        if (length <= QUICK_ASCII_MAX) {
            uint8_t high = 0;
            for (size_t index = 0; index < length; index++)
                high |= text[index];
            valid = !(high & 0x80) || s_utf8_valid(text, (size_t)length);
        } else
            valid = s_utf8_valid(text, (size_t)length);
        if (!valid)
            return false;
    }
    object->type = type;
    object->via.str.size = (uint32_t)length; //  str and bin views are laid out alike
    object->via.str.ptr = (const char *)text;
    quick->at += length;
    return true;
}

//  Whether a fixstr's bytes are all ASCII (false: maybe not, and
//  s_utf8_valid decides).  Up to 16 bytes are read as two words, masked
//  to the string's length: the walk runs over the block's copy of the
//  body, and the room for the objects after it (QUICK_OBJECTS_MAX of
//  them) keeps the read inside the allocation.  A byte loop here was a
//  third of the walk.
_Static_assert(QUICK_OBJECTS_MAX * sizeof(msgpack_object) >= 16,
               "a fixstr's two-word read stays inside the block");
static bool s_quick_ascii(const uint8_t *text, size_t length)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (length <= 16) {
        //  The high bit of each of the string's bytes, which are the
        //  words' low-order ones: masks by length, read, not computed
        //  (two shifts and their branches were a third of the test).
#define QUICK_HIGHS(bytes)                                                                         \
    ((bytes) >= 8 ? 0x8080808080808080ULL : ((1ULL << (8 * (bytes))) - 1) & 0x8080808080808080ULL)
        static const uint64_t masks[17][2] = {
            {QUICK_HIGHS(0), 0},
            {QUICK_HIGHS(1), 0},
            {QUICK_HIGHS(2), 0},
            {QUICK_HIGHS(3), 0},
            {QUICK_HIGHS(4), 0},
            {QUICK_HIGHS(5), 0},
            {QUICK_HIGHS(6), 0},
            {QUICK_HIGHS(7), 0},
            {QUICK_HIGHS(8), 0},
            {QUICK_HIGHS(8), QUICK_HIGHS(1)},
            {QUICK_HIGHS(8), QUICK_HIGHS(2)},
            {QUICK_HIGHS(8), QUICK_HIGHS(3)},
            {QUICK_HIGHS(8), QUICK_HIGHS(4)},
            {QUICK_HIGHS(8), QUICK_HIGHS(5)},
            {QUICK_HIGHS(8), QUICK_HIGHS(6)},
            {QUICK_HIGHS(8), QUICK_HIGHS(7)},
            {QUICK_HIGHS(8), QUICK_HIGHS(8)},
        };
#undef QUICK_HIGHS
        uint64_t low, high;
        memcpy(&low, text, sizeof low);
        memcpy(&high, text + 8, sizeof high);
        return ((low & masks[length][0]) | (high & masks[length][1])) == 0;
    }
#endif
    uint8_t any = 0;
    for (size_t index = 0; index < length; index++)
        any |= text[index];
    return !(any & 0x80);
}

//  A value whose head is neither a fixstr, a fixint nor a fix container:
//  1 when it is a scalar, now built; 2 when it is a container of *count
//  (its kind in *is_map) still to be opened; 0 when the walk does not
//  take it.
static int s_quick_other(s_quick_t *quick, msgpack_object *object, uint8_t head, uint64_t *count,
                         bool *is_map)
{
    static const size_t widths[] = {1, 2, 4, 8};
    uint64_t value;
    switch (head) {
    case 0xc0:
        object->type = MSGPACK_OBJECT_NIL;
        return 1;
    case 0xc2:
    case 0xc3:
        object->type = MSGPACK_OBJECT_BOOLEAN;
        object->via.boolean = head == 0xc3;
        return 1;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (!s_quick_number(quick, widths[head - 0xcc], &value))
            return 0;
        object->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        object->via.u64 = value;
        return 1;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        if (!s_quick_number(quick, widths[head - 0xd0], &value))
            return 0;
        s_build_signed(object, head == 0xd0   ? (int8_t)value
                               : head == 0xd1 ? (int16_t)value
                               : head == 0xd2 ? (int32_t)value
                                              : (int64_t)value);
        return 1;
    case 0xca: {
        if (!s_quick_number(quick, 4, &value))
            return 0;
        uint32_t bits = (uint32_t)value;
        float single;
        memcpy(&single, &bits, sizeof single);
        object->type = MSGPACK_OBJECT_FLOAT32;
        object->via.f64 = single;
        return 1;
    }
    case 0xcb:
        if (!s_quick_number(quick, 8, &value))
            return 0;
        object->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&object->via.f64, &value, sizeof value);
        return 1;
    case 0xd9:
    case 0xda:
    case 0xdb:
        return s_quick_number(quick, widths[head - 0xd9], &value) &&
               s_quick_bytes(quick, object, MSGPACK_OBJECT_STR, value);
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return s_quick_number(quick, widths[head - 0xc4], &value) &&
               s_quick_bytes(quick, object, MSGPACK_OBJECT_BIN, value);
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
        *is_map = head >= 0xde;
        return s_quick_number(quick, head == 0xdc || head == 0xde ? 2 : 4, count) ? 2 : 0;
    default: //  ext, and 0xc1 (never valid): the two passes decide
        return 0;
    }
}

//  The walk: iterative, the containers around the cursor on a stack of
//  at most quick->max_depth (the scan's depth rule: a container may sit
//  inside at most max_depth - 1 others; a whole body's budget is
//  ZFED_NESTING_MAX, a result's outputs one less), the innermost one and
//  the cursor in locals.  A call per value was half of the walk.
static bool s_quick_walk(s_quick_t *quick, msgpack_object *root)
{
    struct {
        msgpack_object *fill; //  the container's next object to fill
        uint64_t left;        //  its objects still to fill (keys and values)
        bool in_map;
    } outer[ZFED_NESTING_MAX];
    int depth = 0; //  containers open around the value being read
    msgpack_object *fill = NULL;
    uint64_t left = 0;
    bool in_map = false;
    const uint8_t *at = quick->at, *end = quick->end;
    msgpack_object *object = root;
    bool is_key = false;
    while (true) {
        if (at == end)
            return false;
        uint8_t head = *at++;
        uint64_t count = 0;
        bool is_map = false;
        if (head >= 0xa0 && head <= 0xbf) {
            size_t length = head & 0x1f;
            if ((size_t)(end - at) < length)
                return false;
            if (!s_quick_ascii(at, length) && !s_utf8_valid(at, length))
                return false;
            object->type = MSGPACK_OBJECT_STR;
            object->via.str.size = (uint32_t)length;
            object->via.str.ptr = (const char *)at;
            at += length;
            goto next;
        }
        if (is_key && !(head >= 0xd9 && head <= 0xdb))
            return false; //  map keys are strings
        if (head <= 0x7f || head >= 0xe0) {
            s_build_signed(object, (int8_t)head);
            goto next;
        }
        if (head <= 0x9f) {
            count = head & 0x0f;
            is_map = head <= 0x8f;
        } else {
            quick->at = at;
            int kind = s_quick_other(quick, object, head, &count, &is_map);
            at = quick->at;
            if (kind == 0)
                return false;
            if (kind == 1)
                goto next;
        }
        //  A container: its elements side by side, filled in order.
        uint64_t elements = is_map ? 2 * count : count;
        if (depth >= quick->max_depth || elements > (uint64_t)(end - at) ||
            elements > (uint64_t)(quick->limit - quick->next))
            return false;
        msgpack_object *first = quick->next;
        quick->next += elements;
        if (is_map) {
            object->type = MSGPACK_OBJECT_MAP;
            object->via.map.size = (uint32_t)count;
            object->via.map.ptr = (msgpack_object_kv *)first; //  key, value, key, ...
        } else {
            object->type = MSGPACK_OBJECT_ARRAY;
            object->via.array.size = (uint32_t)count;
            object->via.array.ptr = first;
        }
        if (elements > 0) {
            if (depth > 0) {
                outer[depth - 1].fill = fill;
                outer[depth - 1].left = left;
                outer[depth - 1].in_map = in_map;
            }
            depth++;
            fill = first;
            left = elements;
            in_map = is_map;
            //  An array's leading run of fixstrs (a sequence of decimals)
            //  filled in a tight loop, as the walk would fill them one by
            //  one: the walk's bookkeeping per value was half of each.
            while (!is_map && left > 0 && at < end && (*at & 0xe0) == 0xa0) {
                size_t length = *at & 0x1f;
                if ((size_t)(end - at) - 1 < length ||
                    (!s_quick_ascii(at + 1, length) && !s_utf8_valid(at + 1, length)))
                    return false;
                fill->type = MSGPACK_OBJECT_STR;
                fill->via.str.size = (uint32_t)length;
                fill->via.str.ptr = (const char *)at + 1;
                fill++;
                left--;
                at += 1 + length;
            }
        }
    next:
        while (left == 0) {
            if (depth <= 1) {
                quick->at = at;
                return true;
            }
            depth--;
            fill = outer[depth - 1].fill;
            left = outer[depth - 1].left;
            in_map = outer[depth - 1].in_map;
        }
        //  A map's objects alternate key, value: a key when an even
        //  number is left.
        is_key = in_map && left % 2 == 0;
        object = fill++;
        left--;
    }
}

//  The one pass, in a block laid out for it: the prefix, the copy of the
//  bytes (which the views point into as they are built), then room for
//  QUICK_OBJECTS_MAX objects (about 3 KiB more than the two passes' block,
//  for no copy and no second walk).  The walk starts from bytes from on
//  (0: the whole body; a result's outputs, after its head was read) with
//  max_depth levels to nest.  NULL when the walk does not take the bytes
//  (the block is then freed) or memory runs out (*failed set).
static void *s_quick_build(void *spare, size_t capacity, const void *data, size_t size, size_t from,
                           int max_depth, size_t prefix, msgpack_object **root, size_t *block_size,
                           bool *failed)
{
    size_t align = _Alignof(msgpack_object);
    size_t at_bytes = s_tree_offset(prefix);
    size_t at_objects = (at_bytes + size + align - 1) / align * align;
    size_t needed = at_objects + QUICK_OBJECTS_MAX * sizeof(msgpack_object);
    uint8_t *block = spare;
    //  A spare much bigger than this body needs is not lent to it: a kept
    //  result would pin the room of whatever reply came before it (a peer's
    //  refused 4 MiB reply is a block of up to 28 MiB).
    if (!block || capacity < needed || capacity / QUICK_SPARE_SLACK > needed) {
        free(spare);
        block = malloc(needed);
        capacity = needed;
    }
    if (!block) {
        *failed = true;
        return NULL;
    }
    *block_size = capacity;
    uint8_t *bytes = block + at_bytes;
    memcpy(bytes, data, size);
    msgpack_object *objects = (msgpack_object *)(block + at_objects);
    s_quick_t quick = {bytes + from, bytes + size, objects + 1, objects + QUICK_OBJECTS_MAX,
                       max_depth};
    if (!s_quick_walk(&quick, objects) || quick.at != quick.end) {
        free(block);
        return NULL;
    }
    *root = objects;
    return block;
}

void *zfed_tree_build(const void *data, size_t size, size_t prefix, msgpack_object **root,
                      char *reason, size_t reason_size)
{
    size_t block_size;
    return zfed_tree_build_reusing(NULL, 0, data, size, prefix, root, &block_size, reason,
                                   reason_size);
}

void *zfed_tree_build_reusing(void *spare, size_t capacity, const void *data, size_t size,
                              size_t prefix, msgpack_object **root, size_t *block_size,
                              char *reason, size_t reason_size)
{
    if (data && size > 0 && size <= QUICK_BODY_MAX) {
        bool failed = false;
        void *block = s_quick_build(spare, capacity, data, size, 0, ZFED_NESTING_MAX, prefix, root,
                                    block_size, &failed);
        if (block || failed) {
            if (failed)
                s_reason(reason, reason_size, "out of memory");
            return block;
        }
    } else
        free(spare);
    size_t values = 0;
    if (s_check(data, size, ZFED_NESTING_MAX, &values, reason, reason_size) != 0)
        return NULL;
    //  values <= ZFED_VALUES_MAX and size <= the caller's limit: no overflow.
    size_t offset = s_tree_offset(prefix);
    *block_size = offset + values * sizeof(msgpack_object) + size;
    uint8_t *block = malloc(*block_size);
    if (!block) {
        s_reason(reason, reason_size, "out of memory");
        return NULL;
    }
    msgpack_object *objects = (msgpack_object *)(block + offset);
    uint8_t *bytes = (uint8_t *)(objects + values);
    memcpy(bytes, data, size);
    s_builder_t build = {bytes, objects + 1};
    s_build_value(&build, objects);
    *root = objects;
    return block;
}

//  ---------------------------------------------------------------------
//  Helpers over msgpack-c objects

static void s_blob_free(s_blob_t *blob)
{
    if (!blob->data)
        return; //  a decoded message's parts have none: three free(NULL) a result
    free(blob->data);
    blob->data = NULL;
    blob->size = 0;
}

//  Canonical bytes of one object, owned by blob.
//  msgpack_pack_object, except that floats always come out as float64:
//  the canonical form (a float32 read from the wire would otherwise stay
//  float32, which peers whose languages have one float type cannot do).
static int s_pack_canonical(msgpack_packer *packer, const msgpack_object *object)
{
    switch (object->type) {
    case MSGPACK_OBJECT_FLOAT32:
        return msgpack_pack_double(packer, object->via.f64);
    case MSGPACK_OBJECT_ARRAY: {
        int rc = msgpack_pack_array(packer, object->via.array.size);
        for (uint32_t index = 0; rc == 0 && index < object->via.array.size; index++)
            rc = s_pack_canonical(packer, &object->via.array.ptr[index]);
        return rc;
    }
    case MSGPACK_OBJECT_MAP: {
        int rc = msgpack_pack_map(packer, object->via.map.size);
        for (uint32_t index = 0; rc == 0 && index < object->via.map.size; index++) {
            rc = s_pack_canonical(packer, &object->via.map.ptr[index].key);
            if (rc == 0)
                rc = s_pack_canonical(packer, &object->via.map.ptr[index].val);
        }
        return rc;
    }
    default:
        return msgpack_pack_object(packer, *object);
    }
}

static int s_blob_pack(s_blob_t *blob, const msgpack_object *object)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    if (s_pack_canonical(&packer, object) != 0) {
        msgpack_sbuffer_destroy(&buffer);
        return -1;
    }
    blob->size = buffer.size;
    blob->data = (uint8_t *)msgpack_sbuffer_release(&buffer);
    return blob->data ? 0 : -1;
}

//  Bytes of a part, packed from its object the first time they are asked
//  for (the message is logically const: this only fills a cache).
static const uint8_t *s_part_bytes(const s_part_t *part, size_t *size)
{
    s_part_t *cache = (s_part_t *)part;
    if (!cache->bytes.data && cache->object && s_blob_pack(&cache->bytes, cache->object) != 0)
        s_blob_free(&cache->bytes);
    *size = cache->bytes.size;
    return cache->bytes.data;
}

//  Object of a part, unpacked from its bytes the first time.
static const msgpack_object *s_part_object(const s_part_t *part)
{
    s_part_t *cache = (s_part_t *)part;
    if (!cache->object && cache->bytes.data) {
        msgpack_unpacked_init(&cache->unpacked);
        cache->unpacked_used = true;
        size_t offset = 0;
        if (msgpack_unpack_next(&cache->unpacked, (const char *)cache->bytes.data,
                                cache->bytes.size, &offset) == MSGPACK_UNPACK_SUCCESS)
            cache->object = &cache->unpacked.data;
    }
    return cache->object;
}

static bool s_is_uint(const msgpack_object *object, uint64_t max)
{
    return object->type == MSGPACK_OBJECT_POSITIVE_INTEGER && object->via.u64 <= max;
}

static bool s_str_equals(const msgpack_object *object, const char *text)
{
    size_t length = strlen(text);
    return object->type == MSGPACK_OBJECT_STR && object->via.str.size == length &&
           memcmp(object->via.str.ptr, text, length) == 0;
}

//  A map whose keys are distinct strings, at most MAP_KEYS_MAX of them.
static int s_check_string_map(const msgpack_object *object, const char *what, char *reason,
                              size_t reason_size)
{
    if (object->type != MSGPACK_OBJECT_MAP) {
        s_reason(reason, reason_size, "%s: expected a map, got %s", what,
                 zfed_msgpack_type_name(object->type));
        return -1;
    }
    const msgpack_object_map *map = &object->via.map;
    if (map->size > MAP_KEYS_MAX) {
        s_reason(reason, reason_size, "%s: %u keys, at most %d allowed", what, map->size,
                 MAP_KEYS_MAX);
        return -1;
    }
    for (uint32_t index = 0; index < map->size; index++) {
        const msgpack_object *key = &map->ptr[index].key;
        if (key->type != MSGPACK_OBJECT_STR || key->via.str.size == 0) {
            s_reason(reason, reason_size, "%s: key %u is not a non-empty string", what, index);
            return -1;
        }
        for (uint32_t earlier = 0; earlier < index; earlier++) {
            const msgpack_object *other = &map->ptr[earlier].key;
            if (other->via.str.size == key->via.str.size &&
                memcmp(other->via.str.ptr, key->via.str.ptr, key->via.str.size) == 0) {
                s_reason(reason, reason_size, "%s: duplicate key '%.*s'", what,
                         (int)key->via.str.size, key->via.str.ptr);
                return -1;
            }
        }
    }
    return 0;
}

//  Depth budgets of the parts a body holds: params and outputs sit one
//  level down, the global value two (inside the [round, value] pair).
#define PART_DEPTH_MAX   (ZFED_NESTING_MAX - 1)
#define GLOBAL_DEPTH_MAX (ZFED_NESTING_MAX - 2)

//  Checks bytes that must be a string-keyed map, then (blob not NULL)
//  keeps them as canonical bytes.
static int s_map_bytes(s_blob_t *blob, const void *data, size_t size, const char *what,
                       char *reason, size_t reason_size)
{
    char ignored[8];
    if (!reason || reason_size == 0) {
        reason = ignored;
        reason_size = sizeof ignored;
    }
    if (size > ZFED_BODY_MAX) {
        s_reason(reason, reason_size, "%s: %zu bytes, over the %d-byte body limit", what, size,
                 ZFED_BODY_MAX);
        return -1;
    }
    if (s_check(data, size, PART_DEPTH_MAX, NULL, reason, reason_size) != 0)
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, data, size, &offset) == MSGPACK_UNPACK_SUCCESS &&
        s_check_string_map(&unpacked.data, what, reason, reason_size) == 0)
        rc = blob ? s_blob_pack(blob, &unpacked.data) : 0;
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

static int s_blob_from_map_bytes(s_blob_t *blob, const void *data, size_t size, const char *what)
{
    return s_map_bytes(blob, data, size, what, NULL, 0);
}

int zfed_msg_check_params(const void *data, size_t size, char *reason, size_t reason_size)
{
    return s_map_bytes(NULL, data, size, "params", reason, reason_size);
}

static int s_blob_from_any_bytes(s_blob_t *blob, const void *data, size_t size)
{
    if (size > ZFED_BODY_MAX || s_check(data, size, GLOBAL_DEPTH_MAX, NULL, NULL, 0) != 0)
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, data, size, &offset) == MSGPACK_UNPACK_SUCCESS)
        rc = s_blob_pack(blob, &unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

//  Printable ASCII without spaces, 1..max_length characters.
static bool s_is_token(const char *text, size_t length, size_t max_length)
{
    if (length == 0 || length > max_length)
        return false;
    for (size_t index = 0; index < length; index++)
        if (text[index] < 0x21 || text[index] > 0x7e)
            return false;
    return true;
}

//  Free text for error messages: well-formed UTF-8 without control
//  characters.
static bool s_is_text(const char *text, size_t length, size_t max_length)
{
    if (length > max_length || !s_utf8_valid((const uint8_t *)text, length))
        return false;
    for (size_t index = 0; index < length; index++) {
        unsigned char c = (unsigned char)text[index];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool s_job_id_valid(const char *job_id, zfed_msg_kind_t kind)
{
    if (kind == ZFED_MSG_ERROR && job_id[0] == '\0')
        return true; //  an error about a body we could not read names no job
    return zfed_is_safe_name(job_id, ZFED_JOB_ID_MAX);
}

//  ---------------------------------------------------------------------
//  Construction

static zfed_msg_t *s_new(zfed_msg_kind_t kind, const char *job_id, uint32_t round, uint32_t task_id,
                         uint32_t attempt)
{
    if (!job_id || strlen(job_id) > ZFED_JOB_ID_MAX || !s_job_id_valid(job_id, kind))
        return NULL;
    zfed_msg_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->kind = kind;
    snprintf(self->job_id, sizeof self->job_id, "%s", job_id);
    self->round = round;
    self->task_id = task_id;
    self->attempt = attempt;
    return self;
}

zfed_msg_t *zfed_msg_new_task(const char *job_id, uint32_t round, uint32_t task_id,
                              uint32_t attempt, const void *params, size_t params_size,
                              int64_t global_round, const void *global_value,
                              size_t global_value_size)
{
    if (global_round < -1 || global_round > (int64_t)UINT32_MAX)
        return NULL;
    zfed_msg_t *self = s_new(ZFED_MSG_TASK, job_id, round, task_id, attempt);
    if (!self)
        return NULL;
    self->global_round = global_round;
    if (s_blob_from_map_bytes(&self->params.bytes, params, params_size, "params") != 0 ||
        s_blob_from_any_bytes(&self->global_value.bytes, global_value, global_value_size) != 0)
        zfed_msg_destroy(&self);
    return self;
}

zfed_msg_t *zfed_msg_new_result(const char *job_id, uint32_t round, uint32_t task_id,
                                uint32_t attempt, const char *worker, uint64_t compute_us,
                                const void *outputs, size_t outputs_size)
{
    if (!worker || !s_is_token(worker, strlen(worker), ZFED_WORKER_NAME_MAX))
        return NULL;
    zfed_msg_t *self = s_new(ZFED_MSG_RESULT, job_id, round, task_id, attempt);
    if (!self)
        return NULL;
    snprintf(self->worker, sizeof self->worker, "%s", worker);
    self->compute_us = compute_us;
    if (s_blob_from_map_bytes(&self->outputs.bytes, outputs, outputs_size, "outputs") != 0)
        zfed_msg_destroy(&self);
    return self;
}

zfed_msg_t *zfed_msg_new_error(const char *job_id, uint32_t round, uint32_t task_id,
                               uint32_t attempt, const char *worker, uint32_t code,
                               const char *field, const char *text)
{
    if (!worker || !s_is_token(worker, strlen(worker), ZFED_WORKER_NAME_MAX) || !field ||
        (field[0] && !s_is_token(field, strlen(field), ZFED_FIELD_MAX)) || !text ||
        !s_is_text(text, strlen(text), ZFED_ERROR_TEXT_MAX) || code < ERROR_CODE_MIN ||
        code > ERROR_CODE_MAX)
        return NULL;
    zfed_msg_t *self = s_new(ZFED_MSG_ERROR, job_id, round, task_id, attempt);
    if (!self)
        return NULL;
    snprintf(self->worker, sizeof self->worker, "%s", worker);
    self->error_code = code;
    snprintf(self->error_field, sizeof self->error_field, "%s", field);
    snprintf(self->error_text, sizeof self->error_text, "%s", text);
    return self;
}

//  What a message holds besides its block.
static void s_release_parts(zfed_msg_t *self)
{
    s_part_t *parts[] = {&self->params, &self->global_value, &self->outputs};
    for (size_t index = 0; index < sizeof parts / sizeof parts[0]; index++) {
        s_blob_free(&parts[index]->bytes);
        if (parts[index]->unpacked_used) {
            msgpack_unpacked_destroy(&parts[index]->unpacked);
            parts[index]->unpacked_used = false;
        }
    }
}

void zfed_msg_destroy(zfed_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_release_parts(*self_p);
    free(*self_p); //  and, decoded, its tree and bytes
    *self_p = NULL;
}

void zfed_msg_recycle(zfed_msg_t **self_p, zfed_msg_t **spare)
{
    if (!self_p || !*self_p)
        return;
    //  Not kept: a constructed message, and a block the one pass would
    //  never reuse (more than QUICK_SPARE_SLACK times its largest).
    size_t largest = s_tree_offset(sizeof **self_p) + QUICK_BODY_MAX + _Alignof(msgpack_object) +
                     QUICK_OBJECTS_MAX * sizeof(msgpack_object);
    if ((*self_p)->block_size == 0 || (*self_p)->block_size / QUICK_SPARE_SLACK > largest) {
        zfed_msg_destroy(self_p);
        return;
    }
    s_release_parts(*self_p);
    zfed_msg_destroy(spare);
    *spare = *self_p;
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Decoding

static const char *s_task_names[] = {"kind",    "version", "job_id", "round",
                                     "task_id", "attempt", "params", "global"};
static const char *s_result_names[] = {"kind",    "version", "job_id",     "round",  "task_id",
                                       "attempt", "worker",  "compute_us", "outputs"};
static const char *s_error_names[] = {"kind",    "version", "job_id", "round", "task_id",
                                      "attempt", "worker",  "code",   "field", "message"};

typedef struct {
    const msgpack_object *element;
    const char **names;
    char *reason;
    size_t reason_size;
} s_reader_t;

static int s_type_error(s_reader_t *reader, int index, const char *expected)
{
    s_reason(reader->reason, reader->reason_size, "element %d (%s): expected %s, got %s", index,
             reader->names[index], expected, zfed_msgpack_type_name(reader->element[index].type));
    return -1;
}

static int s_read_u32(s_reader_t *reader, int index, uint32_t *out)
{
    if (!s_is_uint(&reader->element[index], UINT32_MAX))
        return s_type_error(reader, index, "an unsigned integer below 2^32");
    *out = (uint32_t)reader->element[index].via.u64;
    return 0;
}

//  Copies a string element into out (capacity max_length + 1) after
//  checking it with is_valid; an empty string passes when allow_empty.
//  Copies a string element into out (capacity max_length + 1) after
//  checking it with is_valid; rule says what is_valid wants, for the reason.
//  An empty string passes when allow_empty.
static int s_read_string(s_reader_t *reader, int index, char *out, size_t max_length,
                         bool (*is_valid)(const char *, size_t, size_t), const char *rule,
                         bool allow_empty)
{
    const msgpack_object *element = &reader->element[index];
    if (element->type != MSGPACK_OBJECT_STR)
        return s_type_error(reader, index, "a string");
    uint32_t length = element->via.str.size;
    if (!(allow_empty && length == 0) && !is_valid(element->via.str.ptr, length, max_length)) {
        s_reason(reader->reason, reader->reason_size,
                 "element %d (%s): invalid string of %u bytes: expected %s", index,
                 reader->names[index], length, rule);
        return -1;
    }
    memcpy(out, element->via.str.ptr, length);
    out[length] = '\0';
    return 0;
}

//  Rules, for reasons (keep in step with the limits above).
#define RULE_JOB_ID "1-64 characters of A-Z a-z 0-9 . _ - not starting with '.'"
#define RULE_TEXT   "at most 512 bytes without control characters"

static bool s_is_job_id(const char *text, size_t length, size_t max_length)
{
    //  "ab\0cd" must not pass as "ab": the NUL fails the rule.
    return zfed_is_safe_name_bytes(text, length, max_length);
}

static int s_decode_common(zfed_msg_t *self, s_reader_t *reader)
{
    if (s_read_string(reader, 2, self->job_id, ZFED_JOB_ID_MAX, s_is_job_id, RULE_JOB_ID,
                      self->kind == ZFED_MSG_ERROR) != 0 ||
        s_read_u32(reader, 3, &self->round) != 0 || s_read_u32(reader, 4, &self->task_id) != 0 ||
        s_read_u32(reader, 5, &self->attempt) != 0)
        return -1;
    return 0;
}

static int s_decode_task(zfed_msg_t *self, s_reader_t *reader)
{
    if (s_check_string_map(&reader->element[6], "element 6 (params)", reader->reason,
                           reader->reason_size) != 0)
        return -1;
    const msgpack_object *global = &reader->element[7];
    if (global->type != MSGPACK_OBJECT_ARRAY || global->via.array.size != 2) {
        s_reason(reader->reason, reader->reason_size,
                 "element 7 (global): expected an array [global_round, global_value]");
        return -1;
    }
    const msgpack_object *global_round = &global->via.array.ptr[0];
    if (global_round->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && global_round->via.i64 == -1)
        self->global_round = -1;
    else if (s_is_uint(global_round, UINT32_MAX))
        self->global_round = (int64_t)global_round->via.u64;
    else {
        s_reason(reader->reason, reader->reason_size,
                 "element 7 (global): global_round must be -1 or an unsigned integer below 2^32");
        return -1;
    }
    self->params.object = &reader->element[6];
    self->global_value.object = &global->via.array.ptr[1];
    return 0;
}

static int s_decode_result(zfed_msg_t *self, s_reader_t *reader)
{
    if (s_read_string(reader, 6, self->worker, ZFED_WORKER_NAME_MAX, s_is_token,
                      "1-128 printable ASCII characters without spaces", false) != 0)
        return -1;
    if (reader->element[7].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_type_error(reader, 7, "an unsigned integer");
    self->compute_us = reader->element[7].via.u64;
    if (s_check_string_map(&reader->element[8], "element 8 (outputs)", reader->reason,
                           reader->reason_size) != 0)
        return -1;
    self->outputs.object = &reader->element[8];
    return 0;
}

static int s_decode_error(zfed_msg_t *self, s_reader_t *reader)
{
    if (s_read_string(reader, 6, self->worker, ZFED_WORKER_NAME_MAX, s_is_token,
                      "1-128 printable ASCII characters without spaces", false) != 0)
        return -1;
    if (!s_is_uint(&reader->element[7], ERROR_CODE_MAX) ||
        reader->element[7].via.u64 < ERROR_CODE_MIN)
        return s_type_error(reader, 7, "an error code from 100 to 599");
    self->error_code = (uint32_t)reader->element[7].via.u64;
    if (s_read_string(reader, 8, self->error_field, ZFED_FIELD_MAX, s_is_token,
                      "0-64 printable ASCII characters without spaces", true) != 0 ||
        s_read_string(reader, 9, self->error_text, ZFED_ERROR_TEXT_MAX, s_is_text, RULE_TEXT,
                      true) != 0)
        return -1;
    return 0;
}

//  A decoded message starts empty: everything before its texts, and the
//  first byte of each (a memset of the whole struct was 140 instructions
//  a result).
static void s_clear(zfed_msg_t *self)
{
    memset(self, 0, offsetof(zfed_msg_t, job_id));
    self->job_id[0] = self->worker[0] = self->error_field[0] = self->error_text[0] = '\0';
}

//  ---------------------------------------------------------------------
//  A result laid out as the encoders lay it
//
//  [fixarray 9, fixstr "zfed.result", 1, job_id, round, task_id, attempt,
//  worker, compute_us, outputs]: the head read straight from the bytes
//  (zfed_peek; its strings are held to ASCII rules, so they are UTF-8),
//  the outputs by the one pass with the nesting a body leaves them, no
//  objects for the nine elements and no second reading of them.  What it
//  takes the general decode takes, with the same fields and tree
//  (test_msg holds it to the general decode for every prefix and every
//  one-byte change of results); anything else goes the general way,
//  which accepts or refuses it and says why.  A batch reply's items are
//  these: the general decode was 2,240 instructions a fib result.

#define RESULT_HEAD "\x99\xab" ZFED_KIND_RESULT "\x01"
_Static_assert(sizeof ZFED_KIND_RESULT - 1 == 0x0b && RESULT_ELEMENTS == 9 &&
                   ZFED_PROTOCOL_VERSION == 1,
               "RESULT_HEAD spells a result's array, kind and version");

typedef struct {
    zfed_view_t job_id;
    uint32_t ids[3]; //  round, task_id, attempt
    zfed_view_t worker;
    uint64_t compute_us;
    size_t outputs_at; //  where the outputs start
} s_result_head_t;

//  A str: a fixstr read here, any other form by zfed_peek_bytes.
static int s_head_str(zfed_peek_t *reader, zfed_view_t *view)
{
    if (reader->position < reader->size && (reader->data[reader->position] & 0xe0) == 0xa0) {
        size_t length = reader->data[reader->position] & 0x1f;
        if (reader->size - reader->position - 1 < length)
            return -1;
        view->data = reader->data + reader->position + 1;
        view->size = length;
        reader->position += 1 + length;
        return 0;
    }
    return zfed_peek_bytes(reader, false, view);
}

static bool s_result_head(const void *data, size_t size, s_result_head_t *head)
{
    if (size < sizeof RESULT_HEAD - 1 || memcmp(data, RESULT_HEAD, sizeof RESULT_HEAD - 1) != 0)
        return false;
    zfed_peek_t reader = {data, size, sizeof RESULT_HEAD - 1};
    if (s_head_str(&reader, &head->job_id) != 0 ||
        !s_is_job_id((const char *)head->job_id.data, head->job_id.size, ZFED_JOB_ID_MAX) ||
        zfed_peek_u32(&reader, &head->ids[0]) != 0 || zfed_peek_u32(&reader, &head->ids[1]) != 0 ||
        zfed_peek_u32(&reader, &head->ids[2]) != 0 || s_head_str(&reader, &head->worker) != 0 ||
        !s_is_token((const char *)head->worker.data, head->worker.size, ZFED_WORKER_NAME_MAX) ||
        zfed_peek_uint(&reader, UINT64_MAX, &head->compute_us) != 0)
        return false;
    head->outputs_at = reader.position;
    return reader.position < size;
}

//  The result in *spare's block (taken either way) when s_result_head
//  reads its head and the one pass and the outputs' key rules take the
//  rest; NULL otherwise, with *spare and *capacity what the general
//  decode may reuse (*failed: out of memory).
static zfed_msg_t *s_decode_canonical_result(void **spare, size_t *capacity, const void *data,
                                             size_t size, bool *failed)
{
    s_result_head_t head;
    if (size > QUICK_BODY_MAX || !s_result_head(data, size, &head))
        return NULL;
    msgpack_object *outputs = NULL;
    size_t block_size = 0;
    zfed_msg_t *self = s_quick_build(*spare, *capacity, data, size, head.outputs_at, PART_DEPTH_MAX,
                                     sizeof *self, &outputs, &block_size, failed);
    *spare = NULL;
    *capacity = 0;
    if (!self)
        return NULL;
    if (s_check_string_map(outputs, "element 8 (outputs)", NULL, 0) != 0) {
        *spare = self;
        *capacity = block_size;
        return NULL;
    }
    s_clear(self);
    self->block_size = block_size;
    self->kind = ZFED_MSG_RESULT;
    memcpy(self->job_id, head.job_id.data, head.job_id.size);
    self->job_id[head.job_id.size] = '\0';
    self->round = head.ids[0];
    self->task_id = head.ids[1];
    self->attempt = head.ids[2];
    memcpy(self->worker, head.worker.data, head.worker.size);
    self->worker[head.worker.size] = '\0';
    self->compute_us = head.compute_us;
    self->outputs.object = outputs;
    return self;
}

//  zfed_msg_decode_into, the canonical result's way first when canonical.
static zfed_msg_t *s_decode(zfed_msg_t **spare, const void *data, size_t size, bool canonical,
                            bool *took_canonical, char *reason, size_t reason_size)
{
    //  The spare's parts were released when it was given up: its block is
    //  all there is to it.
    void *block = *spare;
    size_t capacity = block ? (*spare)->block_size : 0;
    *spare = NULL;
    if (took_canonical)
        *took_canonical = false;
    //  Not through s_reason: a vsnprintf per message decoded showed in profiles.
    static const char no_reason[] = "no reason";
    if (reason && reason_size > 0) {
        size_t length =
            reason_size - 1 < sizeof no_reason - 1 ? reason_size - 1 : sizeof no_reason - 1;
        memcpy(reason, no_reason, length);
        reason[length] = '\0';
    }
    if (size > ZFED_BODY_MAX) {
        free(block);
        s_reason(reason, reason_size, "body of %zu bytes is over the %d-byte limit", size,
                 ZFED_BODY_MAX);
        return NULL;
    }
    if (canonical && data) {
        bool failed = false;
        zfed_msg_t *self = s_decode_canonical_result(&block, &capacity, data, size, &failed);
        if (failed) {
            s_reason(reason, reason_size, "out of memory");
            return NULL;
        }
        if (self) {
            if (took_canonical)
                *took_canonical = true;
            return self;
        }
    }
    //  One block: the message, its object tree, its own copy of the bytes
    //  (the tree's strings point into it, whatever the caller does with
    //  the frame).  A kept result is one allocation, freed as one.
    msgpack_object *root = NULL;
    size_t block_size = 0;
    zfed_msg_t *self = zfed_tree_build_reusing(block, capacity, data, size, sizeof *self, &root,
                                               &block_size, reason, reason_size);
    if (!self)
        return NULL;
    s_clear(self);
    self->block_size = block_size;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2) {
        if (root->type == MSGPACK_OBJECT_ARRAY)
            s_reason(reason, reason_size,
                     "body must be an array [kind, version, ...], got an array of %u",
                     root->via.array.size);
        else
            s_reason(reason, reason_size, "body must be an array [kind, version, ...], got %s",
                     zfed_msgpack_type_name(root->type));
        goto fail;
    }
    const msgpack_object *element = root->via.array.ptr;
    zfed_msg_kind_t kind;
    uint32_t expected;
    const char **names;
    if (s_str_equals(&element[0], ZFED_KIND_TASK)) {
        kind = ZFED_MSG_TASK, expected = TASK_ELEMENTS, names = s_task_names;
    } else if (s_str_equals(&element[0], ZFED_KIND_RESULT)) {
        kind = ZFED_MSG_RESULT, expected = RESULT_ELEMENTS, names = s_result_names;
    } else if (s_str_equals(&element[0], ZFED_KIND_ERROR)) {
        kind = ZFED_MSG_ERROR, expected = ERROR_ELEMENTS, names = s_error_names;
    } else {
        if (element[0].type == MSGPACK_OBJECT_STR)
            s_reason(reason, reason_size, "element 0 (kind): unknown kind '%.*s'",
                     (int)(element[0].via.str.size > 32 ? 32 : element[0].via.str.size),
                     element[0].via.str.ptr);
        else
            s_reason(reason, reason_size, "element 0 (kind): expected a string, got %s",
                     zfed_msgpack_type_name(element[0].type));
        goto fail;
    }
    if (element[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        s_reason(reason, reason_size, "element 1 (version): expected an unsigned integer, got %s",
                 zfed_msgpack_type_name(element[1].type));
        goto fail;
    }
    if (element[1].via.u64 != ZFED_PROTOCOL_VERSION) {
        s_reason(reason, reason_size,
                 "element 1 (version): unsupported version %llu, this peer speaks %d",
                 (unsigned long long)element[1].via.u64, ZFED_PROTOCOL_VERSION);
        goto fail;
    }
    if (root->via.array.size != expected) {
        s_reason(reason, reason_size, "%s v%d has %u elements, got %u", zfed_msg_kind_name(kind),
                 ZFED_PROTOCOL_VERSION, expected, root->via.array.size);
        goto fail;
    }
    self->kind = kind;
    s_reader_t reader = {element, names, reason, reason_size};
    int rc = s_decode_common(self, &reader);
    if (rc == 0 && kind == ZFED_MSG_TASK)
        rc = s_decode_task(self, &reader);
    else if (rc == 0 && kind == ZFED_MSG_RESULT)
        rc = s_decode_result(self, &reader);
    else if (rc == 0)
        rc = s_decode_error(self, &reader);
    if (rc == 0)
        return self; //  the parts are views into the tree, in the block
fail:
    zfed_msg_destroy(&self);
    return NULL;
}

zfed_msg_t *zfed_msg_decode(const void *data, size_t size, char *reason, size_t reason_size)
{
    zfed_msg_t *none = NULL;
    return s_decode(&none, data, size, true, NULL, reason, reason_size);
}

zfed_msg_t *zfed_msg_decode_into(zfed_msg_t **spare, const void *data, size_t size, char *reason,
                                 size_t reason_size)
{
    return s_decode(spare, data, size, true, NULL, reason, reason_size);
}

zfed_msg_t *zfed_msg_decode_general(const void *data, size_t size, char *reason, size_t reason_size)
{
    zfed_msg_t *none = NULL;
    return s_decode(&none, data, size, false, NULL, reason, reason_size);
}

zfed_msg_t *zfed_msg_decode_canonical(const void *data, size_t size, bool *took, char *reason,
                                      size_t reason_size)
{
    zfed_msg_t *none = NULL;
    return s_decode(&none, data, size, true, took, reason, reason_size);
}

int zfed_msg_peek_ids(const void *data, size_t size, char *job_id, uint32_t *round,
                      uint32_t *task_id, uint32_t *attempt)
{
    if (size > ZFED_BODY_MAX || zfed_msgpack_check(data, size, NULL, 0) != 0)
        return -1;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    int rc = -1;
    if (msgpack_unpack_next(&unpacked, data, size, &offset) == MSGPACK_UNPACK_SUCCESS &&
        unpacked.data.type == MSGPACK_OBJECT_ARRAY && unpacked.data.via.array.size >= 6) {
        const msgpack_object *element = unpacked.data.via.array.ptr;
        char id[ZFED_JOB_ID_MAX + 1];
        if (element[2].type == MSGPACK_OBJECT_STR &&
            s_is_job_id(element[2].via.str.ptr, element[2].via.str.size, ZFED_JOB_ID_MAX) &&
            s_is_uint(&element[3], UINT32_MAX) && s_is_uint(&element[4], UINT32_MAX) &&
            s_is_uint(&element[5], UINT32_MAX)) {
            memcpy(id, element[2].via.str.ptr, element[2].via.str.size);
            id[element[2].via.str.size] = '\0';
            memcpy(job_id, id, element[2].via.str.size + 1);
            *round = (uint32_t)element[3].via.u64;
            *task_id = (uint32_t)element[4].via.u64;
            *attempt = (uint32_t)element[5].via.u64;
            rc = 0;
        }
    }
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

int zfed_msg_peek_task(const void *data, size_t size, char *job_id, uint32_t *round,
                       uint32_t *task_id, uint32_t *attempt)
{
    zfed_peek_t reader = {data, size, 0};
    uint64_t elements, version;
    bool negative;
    zfed_view_t kind, id;
    uint32_t ids[3];
    if (!data || size > ZFED_BODY_MAX || zfed_peek_array(&reader, &elements) != 0 ||
        elements != TASK_ELEMENTS || zfed_peek_bytes(&reader, false, &kind) != 0 ||
        kind.size != strlen(ZFED_KIND_TASK) || memcmp(kind.data, ZFED_KIND_TASK, kind.size) != 0 ||
        zfed_peek_int(&reader, &version, &negative) != 0 || negative ||
        version != ZFED_PROTOCOL_VERSION || zfed_peek_bytes(&reader, false, &id) != 0 ||
        !s_is_job_id((const char *)id.data, id.size, ZFED_JOB_ID_MAX) ||
        zfed_peek_u32(&reader, &ids[0]) != 0 || zfed_peek_u32(&reader, &ids[1]) != 0 ||
        zfed_peek_u32(&reader, &ids[2]) != 0)
        return -1;
    memcpy(job_id, id.data, id.size);
    job_id[id.size] = '\0';
    *round = ids[0];
    *task_id = ids[1];
    *attempt = ids[2];
    return 0;
}

//  ---------------------------------------------------------------------
//  Encoding

static int s_pack_string(msgpack_packer *packer, const char *text)
{
    size_t length = strlen(text);
    return msgpack_pack_str(packer, length) || msgpack_pack_str_body(packer, text, length) ? -1 : 0;
}

//  The hot encoders (a task per task sent, a result per task run) write
//  their bytes by hand: the forms msgpack-c's packer picks (the smallest
//  for every integer and string length), without a call through the packer
//  and a capacity check per element.  test_msg checks them byte for byte
//  against msgpack-c's packing at every boundary.

//  Most bytes of the head: array, kind (a fixstr), version, the job id's
//  string header (its bytes apart), round, task id and attempt.
#define HEAD_BYTES_MAX (1 + 1 + 16 + 1 + 5 + 3 * 5)

//  Most bytes of an integer (uint64, int64) or a string header.
#define NUMBER_BYTES_MAX 9
#define STRING_HEAD_MAX  5

static uint8_t *s_put_big_endian(uint8_t *at, uint64_t value, size_t width)
{
    for (size_t index = width; index-- > 0; value >>= 8)
        at[index] = (uint8_t)value;
    return at + width;
}

static uint8_t *s_put_uint(uint8_t *at, uint64_t value)
{
    if (value < 0x80) {
        *at++ = (uint8_t)value;
        return at;
    }
    if (value <= UINT8_MAX)
        return *at++ = 0xcc, s_put_big_endian(at, value, 1);
    if (value <= UINT16_MAX)
        return *at++ = 0xcd, s_put_big_endian(at, value, 2);
    if (value <= UINT32_MAX)
        return *at++ = 0xce, s_put_big_endian(at, value, 4);
    return *at++ = 0xcf, s_put_big_endian(at, value, 8);
}

static uint8_t *s_put_int(uint8_t *at, int64_t value)
{
    if (value >= 0)
        return s_put_uint(at, (uint64_t)value);
    if (value >= -32) {
        *at++ = (uint8_t)value;
        return at;
    }
    if (value >= INT8_MIN)
        return *at++ = 0xd0, s_put_big_endian(at, (uint64_t)value, 1);
    if (value >= INT16_MIN)
        return *at++ = 0xd1, s_put_big_endian(at, (uint64_t)value, 2);
    if (value >= INT32_MIN)
        return *at++ = 0xd2, s_put_big_endian(at, (uint64_t)value, 4);
    return *at++ = 0xd3, s_put_big_endian(at, (uint64_t)value, 8);
}

static uint8_t *s_put_str(uint8_t *at, const char *text, size_t length)
{
    if (length < 32)
        *at++ = (uint8_t)(0xa0 | length);
    else if (length <= UINT8_MAX)
        at = s_put_big_endian((*at = 0xd9, at + 1), length, 1);
    else if (length <= UINT16_MAX)
        at = s_put_big_endian((*at = 0xda, at + 1), length, 2);
    else
        at = s_put_big_endian((*at = 0xdb, at + 1), length, 4);
    memcpy(at, text, length);
    return at + length;
}

#define SBUFFER_FIRST_BYTES 256

//  Room for bytes more after the buffer's size: 0, or -1 when out of
//  memory (msgpack_sbuffer grows with realloc and frees with free).
static int s_reserve(msgpack_sbuffer *buffer, size_t bytes)
{
    if (buffer->alloc - buffer->size >= bytes)
        return 0;
    //  A first allocation the size of a small body, not msgpack-c's 8 KiB:
    //  a worker's reply to each item of a batch is a buffer of its own.
    size_t alloc = buffer->alloc ? buffer->alloc : SBUFFER_FIRST_BYTES;
    while (alloc - buffer->size < bytes)
        alloc *= 2;
    char *data = realloc(buffer->data, alloc);
    if (!data)
        return -1;
    buffer->data = data;
    buffer->alloc = alloc;
    return 0;
}

//  Clears buffer and writes the elements every kind starts with: kind,
//  version, job id, round, task id, attempt; with room for more bytes
//  after them.  NULL when out of memory.
static uint8_t *s_put_head(msgpack_sbuffer *buffer, zfed_msg_kind_t kind, const char *job_id,
                           uint32_t round, uint32_t task_id, uint32_t attempt, size_t more)
{
    static const uint8_t elements[] = {0, TASK_ELEMENTS, RESULT_ELEMENTS, ERROR_ELEMENTS};
    size_t job_length = strlen(job_id);
    const char *name = zfed_msg_kind_name(kind);
    msgpack_sbuffer_clear(buffer);
    if (more > SIZE_MAX - HEAD_BYTES_MAX - job_length ||
        s_reserve(buffer, HEAD_BYTES_MAX + job_length + more) != 0)
        return NULL;
    uint8_t *at = (uint8_t *)buffer->data;
    *at++ = (uint8_t)(0x90 | elements[kind]);
    at = s_put_str(at, name, strlen(name));
    at = s_put_uint(at, ZFED_PROTOCOL_VERSION);
    at = s_put_str(at, job_id, job_length);
    at = s_put_uint(at, round);
    at = s_put_uint(at, task_id);
    return s_put_uint(at, attempt);
}

//  The head through s_put_head, then a packer for the kind's own elements.
static int s_encode_head(msgpack_sbuffer *buffer, msgpack_packer *packer, zfed_msg_kind_t kind,
                         const char *job_id, uint32_t round, uint32_t task_id, uint32_t attempt)
{
    uint8_t *at = s_put_head(buffer, kind, job_id, round, task_id, attempt, 0);
    msgpack_packer_init(packer, buffer, msgpack_sbuffer_write);
    if (!at)
        return -1;
    buffer->size = (size_t)(at - (uint8_t *)buffer->data);
    return 0;
}

//  What a peer would refuse is never sent.
static int s_encode_done(const msgpack_sbuffer *buffer, int rc)
{
    return rc == 0 && buffer->size <= ZFED_BODY_MAX ? 0 : -1;
}

size_t zfed_msg_task_prefix(uint8_t *prefix, const char *job_id, uint32_t round)
{
    size_t job_length = strnlen(job_id, ZFED_JOB_ID_MAX + 1);
    if (job_length > ZFED_JOB_ID_MAX)
        return 0;
    uint8_t *at = prefix;
    *at++ = (uint8_t)(0x90 | TASK_ELEMENTS);
    at = s_put_str(at, ZFED_KIND_TASK, sizeof ZFED_KIND_TASK - 1);
    at = s_put_uint(at, ZFED_PROTOCOL_VERSION);
    at = s_put_str(at, job_id, job_length);
    at = s_put_uint(at, round);
    return (size_t)(at - prefix);
}

int zfed_msg_encode_task_after(msgpack_sbuffer *buffer, const uint8_t *prefix, size_t prefix_size,
                               uint32_t task_id, uint32_t attempt, const void *params,
                               size_t params_size, int64_t global_round, const void *global_value,
                               size_t global_value_size)
{
    //  No prefix: zfed_msg_task_prefix refused the job id.
    if (prefix_size == 0 || params_size > ZFED_BODY_MAX || global_value_size > ZFED_BODY_MAX)
        return -1;
    size_t from = buffer->size;
    if (s_reserve(buffer, prefix_size + 2 * NUMBER_BYTES_MAX + params_size + 1 + NUMBER_BYTES_MAX +
                              global_value_size) != 0)
        return -1;
    uint8_t *at = (uint8_t *)buffer->data + from;
    memcpy(at, prefix, prefix_size);
    at = s_put_uint(at + prefix_size, task_id);
    at = s_put_uint(at, attempt);
    memcpy(at, params, params_size);
    at += params_size;
    *at++ = 0x92; //  [global_round, global_value]
    at = s_put_int(at, global_round);
    memcpy(at, global_value, global_value_size);
    at += global_value_size;
    if ((size_t)(at - (uint8_t *)buffer->data) - from > ZFED_BODY_MAX)
        return -1; //  buffer as it was
    buffer->size = (size_t)(at - (uint8_t *)buffer->data);
    return 0;
}

int zfed_msg_encode_task_append(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                                uint32_t task_id, uint32_t attempt, const void *params,
                                size_t params_size, int64_t global_round, const void *global_value,
                                size_t global_value_size)
{
    uint8_t prefix[ZFED_MSG_TASK_PREFIX_MAX];
    size_t prefix_size = zfed_msg_task_prefix(prefix, job_id, round);
    return zfed_msg_encode_task_after(buffer, prefix, prefix_size, task_id, attempt, params,
                                      params_size, global_round, global_value, global_value_size);
}

int zfed_msg_encode_task(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                         uint32_t task_id, uint32_t attempt, const void *params, size_t params_size,
                         int64_t global_round, const void *global_value, size_t global_value_size)
{
    msgpack_sbuffer_clear(buffer);
    return zfed_msg_encode_task_append(buffer, job_id, round, task_id, attempt, params, params_size,
                                       global_round, global_value, global_value_size);
}

int zfed_msg_encode_result(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                           uint32_t task_id, uint32_t attempt, const char *worker,
                           uint64_t compute_us, const void *outputs, size_t outputs_size)
{
    size_t worker_length = strlen(worker);
    if (worker_length > ZFED_BODY_MAX || outputs_size > ZFED_BODY_MAX)
        return -1;
    uint8_t *at = s_put_head(buffer, ZFED_MSG_RESULT, job_id, round, task_id, attempt,
                             STRING_HEAD_MAX + worker_length + NUMBER_BYTES_MAX + outputs_size);
    if (!at)
        return -1;
    at = s_put_str(at, worker, worker_length);
    at = s_put_uint(at, compute_us);
    memcpy(at, outputs, outputs_size);
    at += outputs_size;
    buffer->size = (size_t)(at - (uint8_t *)buffer->data);
    return s_encode_done(buffer, 0);
}

int zfed_msg_encode(const zfed_msg_t *self, msgpack_sbuffer *buffer)
{
    switch (self->kind) {
    case ZFED_MSG_TASK: {
        size_t params_size, global_size;
        const uint8_t *params = s_part_bytes(&self->params, &params_size);
        const uint8_t *global = s_part_bytes(&self->global_value, &global_size);
        if (!params || !global)
            return -1;
        return zfed_msg_encode_task(buffer, self->job_id, self->round, self->task_id, self->attempt,
                                    params, params_size, self->global_round, global, global_size);
    }
    case ZFED_MSG_RESULT: {
        size_t outputs_size;
        const uint8_t *outputs = s_part_bytes(&self->outputs, &outputs_size);
        if (!outputs)
            return -1;
        return zfed_msg_encode_result(buffer, self->job_id, self->round, self->task_id,
                                      self->attempt, self->worker, self->compute_us, outputs,
                                      outputs_size);
    }
    case ZFED_MSG_ERROR: {
        msgpack_packer packer;
        int rc = s_encode_head(buffer, &packer, ZFED_MSG_ERROR, self->job_id, self->round,
                               self->task_id, self->attempt);
        rc |= s_pack_string(&packer, self->worker);
        rc |= msgpack_pack_uint32(&packer, self->error_code);
        rc |= s_pack_string(&packer, self->error_field);
        rc |= s_pack_string(&packer, self->error_text);
        return s_encode_done(buffer, rc);
    }
    }
    return -1;
}

//  ---------------------------------------------------------------------
//  Accessors

zfed_msg_kind_t zfed_msg_kind(const zfed_msg_t *self)
{
    return self->kind;
}

const char *zfed_msg_kind_name(zfed_msg_kind_t kind)
{
    switch (kind) {
    case ZFED_MSG_TASK:
        return ZFED_KIND_TASK;
    case ZFED_MSG_RESULT:
        return ZFED_KIND_RESULT;
    case ZFED_MSG_ERROR:
        return ZFED_KIND_ERROR;
    }
    return "unknown";
}

const char *zfed_msg_job_id(const zfed_msg_t *self)
{
    return self->job_id;
}

uint32_t zfed_msg_round(const zfed_msg_t *self)
{
    return self->round;
}

uint32_t zfed_msg_task_id(const zfed_msg_t *self)
{
    return self->task_id;
}

uint32_t zfed_msg_attempt(const zfed_msg_t *self)
{
    return self->attempt;
}

const uint8_t *zfed_msg_params(const zfed_msg_t *self, size_t *size)
{
    return s_part_bytes(&self->params, size);
}

const msgpack_object *zfed_msg_params_object(const zfed_msg_t *self)
{
    return s_part_object(&self->params);
}

const msgpack_object *zfed_msg_global_object(const zfed_msg_t *self)
{
    return s_part_object(&self->global_value);
}

const msgpack_object *zfed_msg_outputs_object(const zfed_msg_t *self)
{
    return s_part_object(&self->outputs);
}

int64_t zfed_msg_global_round(const zfed_msg_t *self)
{
    return self->global_round;
}

const uint8_t *zfed_msg_global_value(const zfed_msg_t *self, size_t *size)
{
    return s_part_bytes(&self->global_value, size);
}

const char *zfed_msg_worker(const zfed_msg_t *self)
{
    return self->worker;
}

uint64_t zfed_msg_compute_us(const zfed_msg_t *self)
{
    return self->compute_us;
}

const uint8_t *zfed_msg_outputs(const zfed_msg_t *self, size_t *size)
{
    return s_part_bytes(&self->outputs, size);
}

uint32_t zfed_msg_error_code(const zfed_msg_t *self)
{
    return self->error_code;
}

const char *zfed_msg_error_field(const zfed_msg_t *self)
{
    return self->error_field;
}

const char *zfed_msg_error_text(const zfed_msg_t *self)
{
    return self->error_text;
}
