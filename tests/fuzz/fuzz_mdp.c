/*  fuzz_mdp - libFuzzer target: Majordomo frame validation.

    The input is cut into frames, each a one-byte length and that many
    bytes (at most ZFED_FRAMES_MAX frames), and handed to the parsers of all
    three sides, to the compact parse (PROTOCOL.md 3.2) as the broker and
    a worker run it, and to the compact client parse (3.3) as the broker and
    a client run it.  Invariants: no crash, no read outside the frames; on
    success the body lies inside the message and the views point into it;
    a compact message's address lies inside its first frame, which is
    exactly 6 + its length; a compact client frame's service and identity
    lie inside it, valid, and its size is what its lengths say; writing
    either back gives the same bytes.
*/
#include "wire/zfed_frames.h"
#include "zfed/zfed_mdp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool s_inside(zfed_view_t view, const uint8_t *data, size_t size)
{
    return view.size == 0 || (view.data >= data && view.data + view.size <= data + size);
}

static void s_check(const zfed_mdp_t *mdp, size_t count, const uint8_t *data, size_t size)
{
    if (mdp->body_count > 0 && mdp->body_index + mdp->body_count != count)
        abort();
    if (!s_inside(mdp->service, data, size) || !s_inside(mdp->address, data, size) ||
        !s_inside(mdp->extension, data, size))
        abort();
    if (mdp->command == ZFED_MDP_CLIENT && !zfed_mdp_service_valid(mdp->service))
        abort();
    zfed_mdp_offer_t offer = zfed_mdp_ready_offer(mdp->extension, 256);
    if (offer.credit < 1 || offer.credit > 256 ||
        offer.credit != zfed_mdp_ready_credit(mdp->extension, 256))
        abort();
    zfed_mdp_is_mmi(mdp->service);
}

static void s_check_compact(const zfed_view_t *frames, size_t count, uint8_t command,
                            const uint8_t *data, size_t size)
{
    zfed_mdp_t mdp;
    const char *reason = NULL;
    if (zfed_mdp_parse_compact(frames, count, command, &mdp, &reason) != 0) {
        if (!reason ||
            (count > 0 && zfed_mdp_is_compact(frames[0]) && mdp.origin != ZFED_MDP_ORIGIN_WORKER))
            abort(); //  every refusal says why; a compact one is answered as MDPW01
        return;
    }
    s_check(&mdp, count, data, size);
    const zfed_view_t head = frames[0];
    if (mdp.command != command || mdp.body_index != 1 || mdp.body_count < 1 ||
        mdp.address.size < 1 || mdp.address.size > ZFED_MDP_ADDRESS_MAX ||
        head.size != ZFED_MDP_COMPACT_HEAD + mdp.address.size ||
        mdp.address.data != head.data + ZFED_MDP_COMPACT_HEAD)
        abort();
    uint8_t out[ZFED_MDP_COMPACT_MAX];
    size_t written = zfed_mdp_compact_write(out, command, mdp.address.data, mdp.address.size);
    if (written != head.size || memcmp(out, head.data, written) != 0)
        abort();
}

static void s_check_compact_client(const zfed_view_t *frames, size_t count, uint8_t command,
                                   const uint8_t *data, size_t size)
{
    zfed_mdp_t mdp;
    const char *reason = NULL;
    if (zfed_mdp_parse_compact_client(frames, count, command, &mdp, &reason) != 0) {
        if (!reason || mdp.origin != ZFED_MDP_ORIGIN_NONE)
            abort(); //  every refusal says why; a broken head is never answered
        return;
    }
    s_check(&mdp, count, data, size);
    const zfed_view_t head = frames[0];
    bool stamp = command == ZFED_MDPW_REPLY && mdp.ticketed;
    size_t expected =
        ZFED_MDPC_COMPACT_HEAD + mdp.service.size + (stamp ? 1 + mdp.identity.size : 0);
    if (mdp.command != ZFED_MDP_CLIENT || mdp.origin != ZFED_MDP_ORIGIN_CLIENT || !mdp.compact ||
        mdp.body_index != 1 || mdp.body_count < 1 || head.size != expected ||
        mdp.service.data != head.data + ZFED_MDPC_COMPACT_HEAD ||
        !s_inside(mdp.identity, head.data, head.size) ||
        (stamp ? mdp.identity.size < 1 || mdp.identity.size > ZFED_MDP_IDENTITY_MAX
               : mdp.identity.size != 0) ||
        (!mdp.ticketed && mdp.ticket != 0))
        abort();
    uint8_t out[ZFED_MDPC_COMPACT_MAX];
    size_t written = zfed_mdp_compact_client_write(out, command, mdp.service,
                                                   mdp.ticketed ? &mdp.ticket : NULL, mdp.identity);
    if (written != head.size || memcmp(out, head.data, written) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zfed_view_t frames[ZFED_FRAMES_MAX];
    size_t count = 0, position = 0;
    while (position < size && count < ZFED_FRAMES_MAX) {
        size_t length = data[position++];
        if (length > size - position)
            length = size - position;
        frames[count].data = data + position;
        frames[count].size = length;
        position += length;
        count++;
    }
    zfed_mdp_t mdp;
    const char *reason = NULL;
    int (*parsers[])(const zfed_view_t *, size_t, zfed_mdp_t *, const char **) = {
        zfed_mdp_parse_at_broker, zfed_mdp_parse_at_worker, zfed_mdp_parse_at_client};
    for (size_t index = 0; index < 3; index++) {
        if (parsers[index](frames, count, &mdp, &reason) == 0)
            s_check(&mdp, count, data, size);
        else if (!reason)
            abort(); //  every refusal says why
    }
    s_check_compact(frames, count, ZFED_MDPW_REQUEST, data, size);
    s_check_compact(frames, count, ZFED_MDPW_REPLY, data, size);
    s_check_compact_client(frames, count, ZFED_MDPW_REQUEST, data, size);
    s_check_compact_client(frames, count, ZFED_MDPW_REPLY, data, size);
    return 0;
}
