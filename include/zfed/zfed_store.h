/*  zfed_store - a job's work folder.

        WORKDIR/JOB_ID/job.json              settings as run (a loadable job file)
        WORKDIR/JOB_ID/rounds/round-NNNNNN.json  one record per closed round
        WORKDIR/JOB_ID/rounds/round-NNNNNN.results.ndjson  a big round's results
        WORKDIR/JOB_ID/global.json           the final global state
        WORKDIR/JOB_ID/best.json             the best round
        WORKDIR/JOB_ID/summary.json          the whole job
        WORKDIR/JOB_ID/controller.lock       the pid of the controller running it

    One controller at a time: the store holds an exclusive flock on
    controller.lock from open to destroy, so a second controller on the
    same job (a --resume while it runs, two starts with one job id) is
    refused at once instead of writing the same records.  The lock goes
    with the process, however it ends; the file stays (removing it would
    let two late-comers lock two different files).

    Every file is written whole or not at all (temporary file, fsync,
    rename, fsync of the folder), so a crash leaves the previous version
    or the new one, never a torn file.  A controller's round records are
    made durable by the store's thread while the next round runs, never
    more than one round behind (schemas/WORKDIR.md 1.1).
*/
#ifndef ZFED_STORE_H_INCLUDED
#define ZFED_STORE_H_INCLUDED

#include "zfed/zfed_error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZFED_STORE_JOB     "job.json"
#define ZFED_STORE_GLOBAL  "global.json"
#define ZFED_STORE_BEST    "best.json"
#define ZFED_STORE_SUMMARY "summary.json"
#define ZFED_STORE_LOCK    "controller.lock"

typedef struct _zfed_store_t zfed_store_t;

//  Creates WORKDIR/JOB_ID (and rounds/) and locks it for the life of the
//  store.  A folder another controller holds is refused first
//  (ZFED_E_BUSY, "job J is running (pid N)"); then a folder that already
//  holds a job is refused unless resume is true (ZFED_E_EXISTS), and with
//  resume it must hold one (ZFED_E_NO_JOB).  Temporaries a crashed writer
//  left are removed.  NULL with the error.
zfed_store_t *zfed_store_open(const char *workdir, const char *job_id, bool resume,
                              zfed_error_t *error);
void zfed_store_destroy(zfed_store_t **self_p);

//  The job folder.
const char *zfed_store_path(zfed_store_t *self);

//  Writes name (relative to the job folder) durably, after what the
//  store's durability thread holds (zfed_store_private.h) has landed.
//  0 or -1 (errno).
int zfed_store_write(zfed_store_t *self, const char *name, const json_t *value);
int zfed_store_write_round(zfed_store_t *self, uint32_t round, const json_t *record);
//  The name (relative to the job folder) of a big round's results file,
//  rounds/round-NNNNNN.results.ndjson (WORKDIR.md 3.1).
void zfed_store_results_name(uint32_t round, char *name, size_t size);

//  Reads a round record back (new reference).  NULL when it does not exist
//  (errno ENOENT) or cannot be trusted: not valid JSON, or not the record
//  of that round (errno EBADMSG, reason in error).
json_t *zfed_store_read_round(zfed_store_t *self, uint32_t round, char *error, size_t error_size);

//  Reads name (relative to the job folder) as JSON; NULL as above.
json_t *zfed_store_read(zfed_store_t *self, const char *name, char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
