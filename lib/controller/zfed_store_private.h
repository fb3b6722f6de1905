/*  zfed_store - the job folder's files made durable off the round's path
    (private header).

    A round's files are written whole into their temporary files on the
    caller's thread (their content fixed then), staged in the store's open
    group; flush hands the group to the store's durability thread
    (core/zfed_durable's queue: fsync, rename, one fsync per folder), after
    waiting for the group handed before it.  So the next round's tasks go
    out while the last round's records are fsynced, and the work folder is
    never more than one group behind: a crash loses at most the rounds
    whose records were not yet renamed, which --resume runs again, and a
    renamed record is always complete and durable (schemas/WORKDIR.md 1).
*/
#ifndef ZFED_STORE_PRIVATE_H_INCLUDED
#define ZFED_STORE_PRIVATE_H_INCLUDED

#include "core/zfed_durable.h"
#include "zfed/zfed_store.h"

//  Renders value's text now and stages it: the durability thread writes
//  it into its temporary, in order (zfed_durable_deferred).  0, or -1
//  with errno (nothing staged).
int zfed_store_stage(zfed_store_t *self, const char *name, const json_t *value);
int zfed_store_stage_round(zfed_store_t *self, uint32_t round, const json_t *record);
//  Stages a file written through zfed_durable (takes it).
void zfed_store_stage_file(zfed_store_t *self, zfed_durable_t **file_p);
//  What is staged so far is durable before anything staged after lands.
void zfed_store_barrier(zfed_store_t *self);
//  Waits until the groups handed over before are durable, then hands the
//  open group over; with wait, waits for it too.  0, or -1 with the error
//  naming the file and the step that failed (the open group dropped).
int zfed_store_flush(zfed_store_t *self, bool wait, zfed_error_t *error);
//  Whether the durability thread is still on a group handed over.
bool zfed_store_busy(zfed_store_t *self);
//  --sync group: a group's records made durable by one syncfs (see
//  zfed_durable_queue_set_syncfs).
void zfed_store_set_syncfs(zfed_store_t *self, bool syncfs);

#endif
