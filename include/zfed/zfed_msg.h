/*  zfed_msg - the zfed message bodies: task, result, error (protocol v1).

    A body is ONE msgpack array with a fixed positional layout per kind
    (schemas/PROTOCOL.md is the normative description):

    task    ["zfed.task",   1, job_id, round, task_id, attempt, params, global]
            global = [global_round, global_value]
    result  ["zfed.result", 1, job_id, round, task_id, attempt, worker,
             compute_us, outputs]
    error   ["zfed.error",  1, job_id, round, task_id, attempt, worker,
             code, field, message]

    params and outputs are msgpack maps with string keys, and global_value
    is any msgpack value; their meaning belongs to the service (see
    zfed_service.h).  This module checks their structure and keeps them as
    canonical msgpack bytes, so the messaging layer never interprets a
    parameter and a service never parses an envelope.

    zfed_msg_decode validates everything once; a message that decodes is
    whole and every field is within its documented limits.
*/
#ifndef ZFED_MSG_H_INCLUDED
#define ZFED_MSG_H_INCLUDED

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_PROTOCOL_VERSION 1

#define ZFED_KIND_TASK   "zfed.task"
#define ZFED_KIND_RESULT "zfed.result"
#define ZFED_KIND_ERROR  "zfed.error"

//  Limits, all enforced by decode and by the constructors.
#define ZFED_JOB_ID_MAX      64        //  characters of [A-Za-z0-9._-]
#define ZFED_WORKER_NAME_MAX 128       //  printable ASCII, no spaces
#define ZFED_FIELD_MAX       64        //  error field name
#define ZFED_ERROR_TEXT_MAX  512       //  error message
#define ZFED_BODY_MAX        (4 << 20) //  encoded body, bytes
#define ZFED_NESTING_MAX     8         //  arrays/maps inside arrays/maps
//  msgpack values in one body, counting every value at any depth (the
//  body array, containers, elements, map keys and values).  Room for a
//  vecavg task at its limit (two 65,536-number vectors) and for a model
//  descriptor of 100,000 tensors of up to 4 dimensions (MODELS.md); it
//  caps what one decode may allocate at about 25 MB (msgpack-c spends 24
//  bytes on every value), where 4 MiB of fixints used to cost 100 MB.
#define ZFED_VALUES_MAX 1048576

//  Error codes, after HTTP's where one fits.
#define ZFED_ERR_MALFORMED     400 //  body is not a valid zfed message
#define ZFED_ERR_FORBIDDEN     403 //  the sender's key may not do this (CURVE roles)
#define ZFED_ERR_NOT_FOUND     404 //  no such service
#define ZFED_ERR_TOO_LARGE     413 //  over a size limit
#define ZFED_ERR_INVALID_PARAM 422 //  a parameter is missing, mistyped or out of range
#define ZFED_ERR_OVERLOADED    429 //  a queue is full: try later
#define ZFED_ERR_INTERNAL      500 //  the worker failed on a valid task
#define ZFED_ERR_UNAVAILABLE   503 //  the request lost its workers too many times
#define ZFED_ERR_EXPIRED       504 //  the request waited in a queue past its lifetime
#define ZFED_ERR_INSUFFICIENT_STORAGE                                                              \
    507 //  a worker cannot hold a result within its budget (MODELS.md 7)

typedef enum { ZFED_MSG_TASK = 1, ZFED_MSG_RESULT = 2, ZFED_MSG_ERROR = 3 } zfed_msg_kind_t;

typedef struct _zfed_msg_t zfed_msg_t;

//  Constructors copy every argument and return NULL when one breaks a
//  limit: a job id that is not a safe name (an error may carry "" when the
//  job is unknown), a worker name with spaces, params or outputs that are
//  not a msgpack map with string keys, and so on.
zfed_msg_t *zfed_msg_new_task(const char *job_id, uint32_t round, uint32_t task_id,
                              uint32_t attempt, const void *params, size_t params_size,
                              int64_t global_round, const void *global_value,
                              size_t global_value_size);
zfed_msg_t *zfed_msg_new_result(const char *job_id, uint32_t round, uint32_t task_id,
                                uint32_t attempt, const char *worker, uint64_t compute_us,
                                const void *outputs, size_t outputs_size);
zfed_msg_t *zfed_msg_new_error(const char *job_id, uint32_t round, uint32_t task_id,
                               uint32_t attempt, const char *worker, uint32_t code,
                               const char *field, const char *text);
void zfed_msg_destroy(zfed_msg_t **self_p);

//  Decodes one body.  On failure returns NULL and writes a one-line reason
//  into reason[0..reason_size) (e.g. "element 3 (round): expected an
//  unsigned integer, got str").
zfed_msg_t *zfed_msg_decode(const void *data, size_t size, char *reason, size_t reason_size);

//  zfed_msg_decode into the memory of *spare (a message given up with
//  zfed_msg_recycle, or NULL) when it is big enough: a controller that
//  lets each result go once it is read decodes the next one in the same
//  block, without a malloc and a free per result.  *spare is taken either
//  way and left NULL.
zfed_msg_t *zfed_msg_decode_into(zfed_msg_t **spare, const void *data, size_t size, char *reason,
                                 size_t reason_size);
//  Gives *self_p up (NULL after) as the spare of zfed_msg_decode_into,
//  destroying the spare before it; a message that was not decoded is
//  destroyed instead.  Nothing of it may be read afterwards.
void zfed_msg_recycle(zfed_msg_t **self_p, zfed_msg_t **spare);

//  Best effort for error replies: reads job_id, round, task_id and attempt
//  from a body that failed to decode, when those four elements are
//  readable, so the error can still name its task.  Returns 0 when they
//  were found (job_id has room for ZFED_JOB_ID_MAX + 1), else -1.
int zfed_msg_peek_ids(const void *data, size_t size, char *job_id, uint32_t *round,
                      uint32_t *task_id, uint32_t *attempt);

//  Cheaper still, for a broker answering a request it will not take: reads
//  only the head of a task body, the first six elements (an 8-element
//  array, "zfed.task", version 1, a valid job_id, three u32), straight from
//  the bytes, and returns 0 with the ids, or -1.  Nothing after the head
//  is read, nothing is allocated: the cost is the same for any body size,
//  and the rest of the body (params, global value) stays opaque.
int zfed_msg_peek_task(const void *data, size_t size, char *job_id, uint32_t *round,
                       uint32_t *task_id, uint32_t *attempt);

//  Encodes into buffer (cleared first).  The encoding is canonical: the
//  shortest msgpack form of every integer and string, maps in the order
//  they were given.  Returns 0, or -1 on allocation failure.
int zfed_msg_encode(const zfed_msg_t *self, msgpack_sbuffer *buffer);

//  Hot-path encoders: a task or result straight from its parts, without
//  building (and re-checking) a zfed_msg_t.  The caller vouches for the
//  parts: job_id and worker within their limits, params and outputs
//  canonical string-keyed maps, global_value one canonical value (as
//  zfed_msg_params and friends return, or as a service packs them).  The
//  bytes equal what the constructor + zfed_msg_encode would give.
//  Returns 0, or -1 on allocation failure or a body over ZFED_BODY_MAX.
int zfed_msg_encode_task(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                         uint32_t task_id, uint32_t attempt, const void *params, size_t params_size,
                         int64_t global_round, const void *global_value, size_t global_value_size);
//  zfed_msg_encode_task's bytes after what buffer holds (a batch's items
//  written in place: zfed_batch_encode_open); buffer as it was on -1.
int zfed_msg_encode_task_append(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                                uint32_t task_id, uint32_t attempt, const void *params,
                                size_t params_size, int64_t global_round, const void *global_value,
                                size_t global_value_size);
//  The same from the bytes every task of one round begins with (kind,
//  version, job id, round), written once by zfed_msg_task_prefix into
//  prefix (ZFED_MSG_TASK_PREFIX_MAX bytes; it returns their number, 0
//  for a job id over ZFED_JOB_ID_MAX).  zfed_msg_encode_task_append is
//  these two.
#define ZFED_MSG_TASK_PREFIX_MAX (1 + 1 + 16 + 1 + 2 + ZFED_JOB_ID_MAX + 5)
size_t zfed_msg_task_prefix(uint8_t *prefix, const char *job_id, uint32_t round);
int zfed_msg_encode_task_after(msgpack_sbuffer *buffer, const uint8_t *prefix, size_t prefix_size,
                               uint32_t task_id, uint32_t attempt, const void *params,
                               size_t params_size, int64_t global_round, const void *global_value,
                               size_t global_value_size);
int zfed_msg_encode_result(msgpack_sbuffer *buffer, const char *job_id, uint32_t round,
                           uint32_t task_id, uint32_t attempt, const char *worker,
                           uint64_t compute_us, const void *outputs, size_t outputs_size);

zfed_msg_kind_t zfed_msg_kind(const zfed_msg_t *self);
const char *zfed_msg_kind_name(zfed_msg_kind_t kind);
const char *zfed_msg_job_id(const zfed_msg_t *self);
uint32_t zfed_msg_round(const zfed_msg_t *self);
uint32_t zfed_msg_task_id(const zfed_msg_t *self);
uint32_t zfed_msg_attempt(const zfed_msg_t *self);

//  Task fields.  Bytes are owned by self.
const uint8_t *zfed_msg_params(const zfed_msg_t *self, size_t *size);
int64_t zfed_msg_global_round(const zfed_msg_t *self);
const uint8_t *zfed_msg_global_value(const zfed_msg_t *self, size_t *size);

//  The same parts as msgpack objects, valid while self lives: what
//  services read, with no copy or second parse for a decoded message.
//  NULL for a part the message's kind does not have.
const msgpack_object *zfed_msg_params_object(const zfed_msg_t *self);
const msgpack_object *zfed_msg_global_object(const zfed_msg_t *self);
const msgpack_object *zfed_msg_outputs_object(const zfed_msg_t *self);

//  Result and error fields.
const char *zfed_msg_worker(const zfed_msg_t *self);
uint64_t zfed_msg_compute_us(const zfed_msg_t *self);
const uint8_t *zfed_msg_outputs(const zfed_msg_t *self, size_t *size);
uint32_t zfed_msg_error_code(const zfed_msg_t *self);
const char *zfed_msg_error_field(const zfed_msg_t *self);
const char *zfed_msg_error_text(const zfed_msg_t *self);

//  Checks that data[0..size) is exactly one msgpack value no deeper than
//  ZFED_NESTING_MAX, of at most ZFED_VALUES_MAX values in all, whose every
//  array and map count fits in the bytes that follow.  Run before handing untrusted bytes to
//  msgpack-c, whose unpacker allocates what a header claims before reading the elements. Returns 0,
//  or -1 with a reason.
int zfed_msgpack_check(const void *data, size_t size, char *reason, size_t reason_size);

//  Checks bytes meant as a task's params (or a result's outputs): one
//  string-keyed map with distinct keys, no deeper or larger than a body
//  leaves room for.  0, or -1 with a reason.
int zfed_msg_check_params(const void *data, size_t size, char *reason, size_t reason_size);

//  Name of a msgpack object type for error text ("str", "map", ...).
const char *zfed_msgpack_type_name(int type);

#ifdef __cplusplus
}
#endif

#endif
