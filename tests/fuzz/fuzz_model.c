/*  fuzz_model - libFuzzer target: the model descriptor and chunk transfer
    decoders (schemas/MODELS.md 4, 6).

    Invariants: nothing crashes or leaks on any input; a descriptor that
    decodes (as a result, or as a task's global value) re-encodes to
    canonical bytes that decode to the same descriptor and re-encode to
    exactly the same bytes, its layout ends at its size and its chunks
    cover it; a transfer body that decodes re-encodes to canonical bytes
    that decode to the same fields.
*/
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_transfer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void s_fixed_point(const zfed_descriptor_t *d)
{
    char reason[512];
    msgpack_sbuffer first, second;
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_init(&second);
    zfed_descriptor_t again;
    if (zfed_layout_nbytes(d->layout) != d->size)
        abort();
    uint64_t chunks = zfed_descriptor_chunks(d), offset = 0;
    size_t length = 0;
    if (chunks && (zfed_chunk_range(d->size, d->chunk, chunks - 1, &offset, &length) != 0 ||
                   offset + length != d->size))
        abort();
    if (zfed_descriptor_check_data(d, zfed_descriptor_is_inline(d), d->size, reason,
                                   sizeof reason) != 0)
        abort();
    if (zfed_descriptor_encode(d, &first) != 0 ||
        zfed_descriptor_decode(first.data, first.size, ZFED_DESCRIPTOR_RESULT, &again, reason,
                               sizeof reason) != 0 ||
        zfed_descriptor_encode(&again, &second) != 0 || first.size != second.size ||
        memcmp(first.data, second.data, first.size) != 0)
        abort();
    zfed_descriptor_clear(&again);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
}

static void s_transfer(const uint8_t *data, size_t size)
{
    zfed_transfer_t t, back;
    char reason[256];
    if (zfed_transfer_decode(data, size, &t, reason, sizeof reason) != 0)
        return;
    if (!zfed_transfer_is(data, size))
        abort();
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    char text[ZFED_CHUNK_TEXT_MAX + 1];
    uint8_t(*ids)[ZFED_MODEL_ID_SIZE] = NULL;
    size_t cursor = 0, count = 0;
    int rc = -1;
    switch (t.kind) {
    case ZFED_TRANSFER_FETCH:
        rc = zfed_transfer_encode_fetch(&buffer, t.id, t.index);
        break;
    case ZFED_TRANSFER_CHUNK:
        memcpy(text, t.text.data, t.text.size);
        text[t.text.size] = '\0';
        //  A text with a NUL byte is valid on the wire but not as a C string.
        rc = strlen(text) == t.text.size
                 ? zfed_transfer_encode_chunk(&buffer, t.id, t.index, t.code, text)
                 : 1;
        break;
    case ZFED_TRANSFER_RELEASE:
        ids = calloc(t.count, sizeof *ids);
        while (ids && count < t.count && zfed_transfer_next_id(&t, &cursor, ids[count]) == 0)
            count++;
        if (count != t.count)
            abort();
        rc =
            zfed_transfer_encode_release(&buffer, (const uint8_t(*)[ZFED_MODEL_ID_SIZE])ids, count);
        break;
    case ZFED_TRANSFER_RELEASED:
        rc = zfed_transfer_encode_released(&buffer, t.count);
        break;
    }
    if (rc < 0)
        abort();
    if (rc == 0) {
        if (zfed_transfer_decode(buffer.data, buffer.size, &back, reason, sizeof reason) != 0 ||
            back.kind != t.kind || back.index != t.index || back.code != t.code ||
            back.count != t.count || memcmp(back.id, t.id, sizeof t.id) != 0)
            abort();
    }
    free(ids);
    msgpack_sbuffer_destroy(&buffer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reason[512];
    zfed_descriptor_t d;
    for (int role = ZFED_DESCRIPTOR_RESULT; role <= ZFED_DESCRIPTOR_GLOBAL; role++) {
        if (zfed_descriptor_decode(data, size, (zfed_descriptor_role_t)role, &d, reason,
                                   sizeof reason) == 0) {
            s_fixed_point(&d);
            zfed_descriptor_clear(&d);
        } else if (d.layout)
            abort(); //  a refusal leaves nothing behind
    }
    s_transfer(data, size);
    //  A task whose global value is a descriptor, as a worker reads it.
    zfed_msg_t *task = zfed_msg_decode(data, size, NULL, 0);
    if (task && zfed_msg_kind(task) == ZFED_MSG_TASK &&
        zfed_descriptor_read(zfed_msg_global_object(task), ZFED_DESCRIPTOR_GLOBAL, &d, reason,
                             sizeof reason) == 0) {
        s_fixed_point(&d);
        zfed_descriptor_clear(&d);
    }
    zfed_msg_destroy(&task);
    return 0;
}
