/*  zfed_json - moving values between JSON (job files, records) and msgpack
    (the wire).

    Integers stay integers and exact both ways; a msgpack integer outside
    JSON's (jansson's) 64-bit signed range becomes its decimal string, never
    a rounded float.  Binary and extension types have no JSON form and are
    refused.
*/
#ifndef ZFED_JSON_H_INCLUDED
#define ZFED_JSON_H_INCLUDED

#include <jansson.h>
#include <msgpack.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Packs a JSON value.  Returns 0, or -1 (with reason) for values msgpack
//  cannot carry exactly or nesting past ZFED_NESTING_MAX.
int zfed_json_pack(const json_t *value, msgpack_packer *packer, char *reason, size_t reason_size);

//  A JSON copy of a msgpack object (new reference), or NULL when it holds
//  bin/ext values, non-string map keys, or nests too deep.
json_t *zfed_json_from_msgpack(const msgpack_object *object);

//  value as the work folder's files hold it: indented by 2, keys in order,
//  reals as precise as they need, a final newline (malloc'd, its length
//  in size; NULL when out of memory).
char *zfed_json_file_text(const json_t *value, size_t *size);
//  Writes value as indented JSON through zfed_write_file_durable.  0 or -1.
int zfed_json_write_durable(const char *path, const json_t *value);

//  JSON text without a tree, for records written a line per result
//  (WORKDIR.md 3.1): each appends to out and returns 0, or -1 when out of
//  memory.  A string is quoted and escaped as jansson does (", \ and
//  control characters; UTF-8 as is).
int zfed_json_text_string(msgpack_sbuffer *out, const char *text, size_t size);
int zfed_json_text_int(msgpack_sbuffer *out, int64_t value);
int zfed_json_text_raw(msgpack_sbuffer *out, const char *text);

//  The same text written through a cursor into room reserved once, for a
//  line of many members: a write through the buffer per member was most
//  of a result's line.  zfed_json_text_reserve makes room for size more
//  bytes and returns where they start (NULL when out of memory);
//  zfed_json_text_commit takes everything up to end as written.  Each
//  zfed_json_put_* writes at most the bytes its bound says and returns
//  the cursor after them.
#define ZFED_JSON_INT_MAX            20
#define ZFED_JSON_STRING_MAX(length) (6 * (size_t)(length) + 2)
char *zfed_json_text_reserve(msgpack_sbuffer *out, size_t size);
void zfed_json_text_commit(msgpack_sbuffer *out, const char *end);
char *zfed_json_put_string(char *at, const char *text, size_t size);
char *zfed_json_put_int(char *at, int64_t value);
//  A literal's bytes, without its NUL.
#define ZFED_JSON_PUT_LITERAL(at, literal)                                                         \
    (memcpy((at), (literal), sizeof(literal) - 1), (at) + sizeof(literal) - 1)

#ifdef __cplusplus
}
#endif

#endif
