/*  zfed_publish - descriptor, inline bytes or blob entry of the global.

    The inline buffer is shared by every data frame of a round and by the
    publisher; libzmq drops a frame's reference from its I/O thread, so
    the count is atomic.
*/
#include "controller/zfed_publish.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_safetensors.h"

#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    atomic_int references;
    size_t size;
    uint8_t data[];
} shared_t;

struct _zfed_publish_t {
    zfed_blob_server_t *server;
    uint32_t chunk;
    bool set;
    uint8_t id[ZFED_SHA256_SIZE];
    bool served; //  id is held by the blob server
    shared_t *shared;
    msgpack_sbuffer descriptor;
};

static void s_unref(void *data, void *hint)
{
    (void)data;
    shared_t *shared = hint;
    if (atomic_fetch_sub(&shared->references, 1) == 1)
        free(shared);
}

zfed_publish_t *zfed_publish_new(zfed_blob_server_t *server, uint32_t chunk)
{
    zfed_publish_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->server = server;
    self->chunk = chunk;
    msgpack_sbuffer_init(&self->descriptor);
    return self;
}

static void s_unpublish(zfed_publish_t *self)
{
    if (self->served)
        zfed_blob_server_remove(self->server, self->id);
    self->served = false;
    if (self->shared)
        s_unref(NULL, self->shared);
    self->shared = NULL;
    self->set = false;
}

void zfed_publish_destroy(zfed_publish_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zfed_publish_t *self = *self_p;
    s_unpublish(self);
    msgpack_sbuffer_destroy(&self->descriptor);
    free(self);
    *self_p = NULL;
}

//  Reads the whole data of a small model into a fresh shared buffer.
static shared_t *s_load(zfed_safetensors_t *file, uint64_t size, char *reason, size_t reason_size)
{
    shared_t *shared = malloc(sizeof *shared + (size ? size : 1));
    if (!shared) {
        snprintf(reason, reason_size, "out of memory");
        return NULL;
    }
    atomic_init(&shared->references, 1);
    shared->size = (size_t)size;
    if (size && zfed_safetensors_read(file, 0, shared->data, (size_t)size, reason, reason_size)) {
        free(shared);
        return NULL;
    }
    return shared;
}

int zfed_publish_set(zfed_publish_t *self, const char *path, const uint8_t sha256[ZFED_SHA256_SIZE],
                     char *reason, size_t reason_size)
{
    if (self->set && memcmp(self->id, sha256, ZFED_SHA256_SIZE) == 0)
        return 0; //  the same model again: already out there
    zfed_safetensors_t *file = zfed_safetensors_open(path, reason, reason_size);
    if (!file)
        return -1;
    const zfed_layout_t *layout = zfed_safetensors_layout(file);
    uint64_t size = zfed_layout_nbytes(layout);
    bool inline_ = size <= ZFED_MODEL_INLINE_MAX;
    zfed_descriptor_t descriptor = {0};
    int rc = zfed_descriptor_set(&descriptor, sha256, sha256, layout, self->chunk,
                                 inline_        ? ""
                                 : self->server ? zfed_blob_server_service(self->server)
                                                : "",
                                 ZFED_DESCRIPTOR_GLOBAL, reason, reason_size);
    if (rc == 0 && !inline_ && !self->server) {
        snprintf(reason, reason_size,
                 "a model of %llu bytes travels by reference, and no blob "
                 "service is running",
                 (unsigned long long)size);
        rc = -1;
    }
    msgpack_sbuffer packed;
    msgpack_sbuffer_init(&packed);
    if (rc == 0 && zfed_descriptor_encode(&descriptor, &packed) != 0) {
        snprintf(reason, reason_size, "out of memory");
        rc = -1;
    }
    zfed_descriptor_clear(&descriptor);
    shared_t *shared = NULL;
    if (rc == 0 && inline_ && !(shared = s_load(file, size, reason, reason_size)))
        rc = -1;
    if (rc != 0) {
        msgpack_sbuffer_destroy(&packed);
        zfed_safetensors_close(&file);
        return -1;
    }
    //  The new one is ready: the old one goes.
    s_unpublish(self);
    if (!inline_) {
        //  The blob server takes the open file and reads chunks from it.
        if (zfed_blob_server_hold_file(self->server, sha256, &file, self->chunk, ZFED_HOLD_FOREVER,
                                       reason, reason_size) != 0) {
            msgpack_sbuffer_destroy(&packed);
            zfed_safetensors_close(&file);
            return -1;
        }
        self->served = true;
    }
    zfed_safetensors_close(&file);
    msgpack_sbuffer_destroy(&self->descriptor);
    self->descriptor = packed;
    self->shared = shared;
    memcpy(self->id, sha256, ZFED_SHA256_SIZE);
    self->set = true;
    return 0;
}

const uint8_t *zfed_publish_descriptor(const zfed_publish_t *self, size_t *size)
{
    *size = self->set ? self->descriptor.size : 0;
    return self->set ? (const uint8_t *)self->descriptor.data : NULL;
}

bool zfed_publish_is_inline(const zfed_publish_t *self)
{
    return self->shared != NULL;
}

int zfed_publish_data(zfed_publish_t *self, const void **data, size_t *size,
                      zfed_client_free_fn **free_fn, void **hint)
{
    if (!self->shared)
        return -1;
    atomic_fetch_add(&self->shared->references, 1);
    *data = self->shared->data;
    *size = self->shared->size;
    *free_fn = s_unref;
    *hint = self->shared;
    return 0;
}
