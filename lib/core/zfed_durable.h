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

#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_durable_t zfed_durable_t;

//  Starts writing path (mode 0644).  NULL with errno set.
zfed_durable_t *zfed_durable_open(const char *path);
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

//  Removes the temporaries crashed writers left in folder (not below it):
//  only for a caller that owns the folder alone, or it would remove a
//  live writer's file.  Returns how many were removed, or -1 (errno).
int zfed_durable_sweep(const char *folder);

#endif
