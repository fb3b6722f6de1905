/*  zfed_durable - a file written whole or not at all (private header).

    Bytes go to a temporary file beside the target ("PATH.tmp.XXXXXX",
    made by mkstemp, so two writers of one path never write into each
    other's temporary); commit fsyncs it, renames it over PATH and fsyncs
    the folder, so once commit returns the new file survives a crash, and
    until then readers see the previous file (or none).  Abort (or destroy
    before commit) removes the temporary file.  Writers of big files stream
    through it chunk by chunk; zfed_write_file_durable is the one-buffer
    case.  A writer that crashed leaves its temporary behind: whoever owns
    the folder alone (a job folder under its lock) sweeps them.
*/
#ifndef ZFED_DURABLE_H_INCLUDED
#define ZFED_DURABLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_durable_t zfed_durable_t;

//  Starts writing path (mode 0644).  NULL with errno set.
zfed_durable_t *zfed_durable_open(const char *path);
//  A file whose bytes are all in data (taken: freed, whatever happens),
//  for zfed_durable_queue_add: the queue's thread makes its temporary and
//  writes it, so the caller's thread touches no file system (on ext4 a
//  new file's creation waits for the journal's commit in progress).  Not
//  for zfed_durable_write.  NULL with errno set.
zfed_durable_t *zfed_durable_deferred(const char *path, char *data, size_t size);
//  Appends size bytes (retrying short writes and EINTR).  0, or -1 with
//  errno set; the file is then abandoned and commit fails.
int zfed_durable_write(zfed_durable_t *self, const void *data, size_t size);
//  Bytes written so far.
uint64_t zfed_durable_size(const zfed_durable_t *self);
//  fsync, rename over the path, fsync the folder; destroys self either
//  way.  0, or -1 with errno set and no temporary file left behind.
int zfed_durable_commit(zfed_durable_t **self_p);
//  Gives up: removes the temporary file.  Idempotent.
void zfed_durable_abort(zfed_durable_t **self_p);
//  The path the file is written for.
const char *zfed_durable_path(const zfed_durable_t *self);

//  Removes the temporaries crashed writers left in folder (not below it):
//  only for a caller that owns the folder alone, or it would remove a
//  live writer's file.  Returns how many were removed, or -1 (errno).
int zfed_durable_sweep(const char *folder);

//  The queue: commits off the caller's thread, in order.  The caller
//  writes files whole (open, write) and adds them to its open group; a
//  group handed over (submit) is committed by one thread, groups in the
//  order they were handed, files in the order they were added: each
//  fsynced and renamed over its path, then, at each barrier and at the
//  group's end, each folder renamed into fsynced once (not once per
//  file).  So a file added after a barrier is never renamed before the
//  files before it are durable, and a group never before the groups
//  handed before it.  wait blocks until every group handed is durable.
//  The first failure (a file, the step, errno's text) sticks: the files
//  after it are removed, never renamed, and every wait after fails.
typedef struct _zfed_durable_queue_t zfed_durable_queue_t;

//  Starts the thread (signals blocked on it).  NULL with errno set.
zfed_durable_queue_t *zfed_durable_queue_new(void);
//  Hands the open group over, waits for every group, joins the thread.
void zfed_durable_queue_destroy(zfed_durable_queue_t **self_p);
//  Adds a written file to the open group; takes it (*file_p NULL after).
void zfed_durable_queue_add(zfed_durable_queue_t *self, zfed_durable_t **file_p);
//  The open group's files so far land, folders fsynced, before any
//  file added after.
void zfed_durable_queue_barrier(zfed_durable_queue_t *self);
//  Hands the open group (if any) to the thread; returns at once.
void zfed_durable_queue_submit(zfed_durable_queue_t *self);
//  Drops the open group: its temporaries are removed.
void zfed_durable_queue_abandon(zfed_durable_queue_t *self);
//  From the next group handed over: the files between two barriers, when
//  there are several, are made durable by one syncfs(2) of their file
//  system instead of an fsync each (Linux; elsewhere an fsync each).
//  Durable the same, with one flush of the device for them, but it also
//  waits for every other writer's data on that file system.
void zfed_durable_queue_set_syncfs(zfed_durable_queue_t *self, bool syncfs);
//  Whether a group handed over is not yet durable.
bool zfed_durable_queue_busy(zfed_durable_queue_t *self);
//  Waits until every group handed over is durable.  0, or -1 with errno
//  set and the reason ("PATH: STEP: TEXT") in reason.
int zfed_durable_queue_wait(zfed_durable_queue_t *self, char *reason, size_t size);

#endif
