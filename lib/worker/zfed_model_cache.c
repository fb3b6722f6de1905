/*  zfed_model_cache - shared, counted global models by id.

    A list, newest first, under one mutex: a worker keeps one or two
    globals, so a scan is cheaper than anything smarter.
*/
#include "worker/zfed_model_cache.h"
#include "core/zfed_list.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct _zfed_cached_t {
    zfed_link_t link; //  on the cache's list while cached
    uint8_t id[ZFED_MODEL_ID_SIZE];
    zfed_model_t *model;
    atomic_int refs; //  the cache's (while listed) + one per user
};

struct _zfed_model_cache_t {
    pthread_mutex_t lock;
    zfed_link_t entries;
    size_t count;
    size_t keep;
};

static void s_unref(zfed_cached_t *entry)
{
    if (atomic_fetch_sub(&entry->refs, 1) != 1)
        return;
    zfed_model_destroy(&entry->model);
    free(entry);
}

zfed_model_cache_t *zfed_model_cache_new(size_t keep)
{
    zfed_model_cache_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    zfed_link_init(&self->entries);
    self->keep = keep ? keep : 1;
    return self;
}

//  Unlinks entry (the lock held); the cache's reference goes with it.
static void s_evict(zfed_model_cache_t *self, zfed_cached_t *entry)
{
    zfed_link_remove(&entry->link);
    self->count--;
    s_unref(entry);
}

void zfed_model_cache_destroy(zfed_model_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_model_cache_t *self = *self_p;
    zfed_link_t *link;
    while ((link = zfed_list_first(&self->entries)) != NULL)
        s_evict(self, zfed_container_of(link, zfed_cached_t, link));
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

zfed_cached_t *zfed_model_cache_get(zfed_model_cache_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE])
{
    zfed_cached_t *found = NULL;
    pthread_mutex_lock(&self->lock);
    for (zfed_link_t *link = self->entries.next; link != &self->entries; link = link->next) {
        zfed_cached_t *entry = zfed_container_of(link, zfed_cached_t, link);
        if (memcmp(entry->id, id, ZFED_MODEL_ID_SIZE) == 0) {
            atomic_fetch_add(&entry->refs, 1);
            found = entry;
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return found;
}

zfed_cached_t *zfed_model_cache_put(zfed_model_cache_t *self, const uint8_t id[ZFED_MODEL_ID_SIZE],
                                    zfed_model_t **model_p)
{
    zfed_cached_t *entry = calloc(1, sizeof *entry);
    if (!entry) {
        zfed_model_destroy(model_p);
        return NULL;
    }
    zfed_link_init(&entry->link);
    memcpy(entry->id, id, ZFED_MODEL_ID_SIZE);
    entry->model = *model_p;
    *model_p = NULL;
    atomic_init(&entry->refs, 2); //  the cache's and the caller's
    pthread_mutex_lock(&self->lock);
    zfed_list_push_front(&self->entries, &entry->link);
    self->count++;
    while (self->count > self->keep)
        s_evict(self, zfed_container_of(self->entries.prev, zfed_cached_t, link));
    pthread_mutex_unlock(&self->lock);
    return entry;
}

void zfed_model_cache_trim(zfed_model_cache_t *self)
{
    pthread_mutex_lock(&self->lock);
    for (zfed_link_t *link = self->entries.next, *next; link != &self->entries; link = next) {
        next = link->next;
        zfed_cached_t *entry = zfed_container_of(link, zfed_cached_t, link);
        if (atomic_load(&entry->refs) == 1)
            s_evict(self, entry);
    }
    pthread_mutex_unlock(&self->lock);
}

size_t zfed_model_cache_size(zfed_model_cache_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t count = self->count;
    pthread_mutex_unlock(&self->lock);
    return count;
}

const zfed_model_t *zfed_cached_model(const zfed_cached_t *self)
{
    return self->model;
}

zfed_cached_t *zfed_cached_use(zfed_cached_t *self)
{
    atomic_fetch_add(&self->refs, 1);
    return self;
}

void zfed_cached_release(zfed_cached_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_unref(*self_p);
    *self_p = NULL;
}
