/*  fuzz_mdp - libFuzzer target: Majordomo frame validation.

    The input is cut into frames, each a one-byte length and that many
    bytes (at most ZFED_FRAMES_MAX frames), and handed to the parsers of all
    three sides.  Invariants: no crash, no read outside the frames; on
    success the body lies inside the message and the views point into it.
*/
#include "wire/zfed_frames.h"
#include "zfed/zfed_mdp.h"

#include <stdint.h>
#include <stdlib.h>

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
    zfed_mdp_ready_credit(mdp->extension, 256);
    zfed_mdp_is_mmi(mdp->service);
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
    return 0;
}
