/*  zfed_model_cache - the global models a worker process keeps, by id
    (private header; MODELS.md 8: keep the last global fetched).

    A global's id is its SHA-256, so a model found here under an id is
    that model, already verified: a task whose global is here needs no
    fetch.  Entries are shared, read-only, by every task that uses them,
    and counted: an entry leaves the cache when newer ones push it out
    (at most `keep`), and its memory goes when the last task using it is
    done.  Thread-safe: compute threads look models up, the I/O thread
    puts the ones it fetched.
*/
#ifndef ZFED_MODEL_CACHE_H_INCLUDED
#define ZFED_MODEL_CACHE_H_INCLUDED

#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _zfed_model_cache_t zfed_model_cache_t;
typedef struct _zfed_cached_t zfed_cached_t; //  one model, shared

zfed_model_cache_t *zfed_model_cache_new(size_t keep);
//  Entries still in use stay valid until released.
void zfed_model_cache_destroy(zfed_model_cache_t **self_p);

//  The model with id, for the caller to use (release it after), or NULL.
zfed_cached_t *zfed_model_cache_get(zfed_model_cache_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE]);
//  Puts *model_p (taken) under id, newest first, and returns it for the
//  caller to use; pushes out the oldest beyond keep.  NULL when memory
//  runs out (the model is destroyed then).
zfed_cached_t *zfed_model_cache_put(zfed_model_cache_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                                    zfed_model_t **model_p);
//  Pushes out every entry no task uses: called before a new model is
//  fetched, so a worker never holds an old global it will not use beside
//  the new one.
void zfed_model_cache_trim(zfed_model_cache_t *self);
size_t zfed_model_cache_size(zfed_model_cache_t *self);

const zfed_model_t *zfed_cached_model(const zfed_cached_t *self);
//  One more use of self (returns self).
zfed_cached_t *zfed_cached_use(zfed_cached_t *self);
//  Drops the caller's use.  Idempotent.
void zfed_cached_release(zfed_cached_t **self_p);

#endif
