/*  zfed_task - what a worker does with one task body, whatever connection
    it came on (private header of lib/worker).

    Error replies, the site parameter (PROTOCOL of sites: a task for site
    S carries params["site"] = S, which must be this worker's site and is
    taken out before the service sees the params), and model tasks
    (MODELS.md 8): decode the task and its descriptor, find the global
    model (the data frame, or the cache), run the service's train hook,
    and write the result with its descriptor: inline when it is at most
    4 MiB, else by reference for the I/O thread to hold.  A global by
    reference that is not cached yet sends the job back to the I/O thread
    to be fetched; the task then runs again with the model it fetched.
*/
#ifndef ZFED_TASK_H_INCLUDED
#define ZFED_TASK_H_INCLUDED

#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "worker/zfed_model_cache.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The ids an error reply names ("" and 0s when the task was unreadable).
typedef struct {
    char job_id[ZFED_JOB_ID_MAX + 1];
    uint32_t round;
    uint32_t task_id;
    uint32_t attempt;
} zfed_task_ids_t;

//  An error body naming ids into reply (an empty body when even that
//  cannot be encoded: the client counts it and resends).
void zfed_task_encode_error(const char *worker, const zfed_task_ids_t *ids,
                            const zfed_fault_t *fault, msgpack_sbuffer *reply);
//  Decodes a body that must be a task: the task, or NULL with the fault
//  (400 "bad task: REASON", or "expected zfed.task, got KIND").
zfed_msg_t *zfed_task_decode(const void *body, size_t size, zfed_fault_t *fault);
//  The ids of a decoded task, or of a body that did not decode (as far
//  as zfed_msg_peek_ids can read them).
void zfed_task_ids(const zfed_msg_t *task, const void *body, size_t size, zfed_task_ids_t *ids);

//  The params the service sees.  site NULL, or params without "site":
//  *out is params itself.  Otherwise params["site"] must be site (else
//  -1 + 422 fault, field "site") and *out is a copy of the map without
//  it, whose pairs live in *storage (the caller frees it).  0 or -1.
int zfed_task_site_params(const char *site, const msgpack_object *params, msgpack_object *out,
                          msgpack_object_kv **storage, zfed_fault_t *fault);

//  Everything a model task needs besides its bytes.
typedef struct {
    const zfed_service_t *service;
    const char *site;         //  or NULL
    const void *data;         //  the service's data (open_data), or NULL
    const char *blob_service; //  where results over 4 MiB are held
    uint32_t chunk;           //  the chunk size of results held by reference
    bool verify;              //  check an inline global's data against its sha256
    bool result_sha256;       //  also hash results held by reference (inline ones always are)
    zfed_model_cache_t *cache;
} zfed_model_runner_t;

typedef struct {
    zfed_task_ids_t ids; //  the task's, once it decoded
    bool has_ids;
    //  In: the request's data frame, and the global the I/O thread
    //  fetched for this task (a use of it: released by clear).
    const void *data;
    size_t data_size;
    bool has_data;
    zfed_cached_t *fetched;
    //  Out.  need_fetch: nothing was written; fetch global (by
    //  reference) and run the task again.  Otherwise the reply is
    //  written and result is the result's model: sent as the data frame
    //  (hold false) or held under result_id before the reply goes.
    bool need_fetch;
    zfed_descriptor_t global;
    zfed_model_t *result;
    bool hold;
    uint8_t result_id[ZFED_MODEL_ID_SIZE];
} zfed_model_job_t;

//  Runs one model task body (any thread) and writes its reply body into
//  reply, unless the global must be fetched first (job->need_fetch).
//  Returns the number of error replies written (0 or 1).
unsigned zfed_model_execute(const zfed_model_runner_t *runner, const char *worker, const void *body,
                            size_t size, zfed_model_job_t *job, msgpack_sbuffer *reply);

//  Frees what the job holds (global descriptor, fetched model, result).
void zfed_model_job_clear(zfed_model_job_t *job);

#endif
