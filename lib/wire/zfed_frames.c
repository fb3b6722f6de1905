/*  zfed_frames - bounded, allocation-free multipart receive.  */
#include "wire/zfed_frames.h"

#include <errno.h>
#include <string.h>

static int s_recv_part(zmq_msg_t *part, void *socket, int flags)
{
    while (true) {
        if (zmq_msg_recv(part, socket, flags) >= 0)
            return 0;
        //  Later parts of a message are already here (ZeroMQ delivers
        //  messages whole), so only an interrupt can stop us; retry it.
        if (errno != EINTR || flags & ZMQ_DONTWAIT)
            return -1;
    }
}

int zfed_frames_recv(zfed_frames_t *self, void *socket, int flags)
{
    self->count = 0;
    self->dropped = 0;
    self->bytes = 0;
    bool more = true;
    int part_flags = flags;
    while (more) {
        zmq_msg_t *part = &self->part[self->count < ZFED_FRAMES_MAX ? self->count : 0];
        zmq_msg_t spill;
        if (self->count >= ZFED_FRAMES_MAX)
            part = &spill;
        zmq_msg_init(part);
        if (s_recv_part(part, socket, part_flags) != 0) {
            int saved = errno;
            zmq_msg_close(part);
            if (self->count == 0 && self->dropped == 0) {
                errno = saved;
                return -1;
            }
            //  A failure mid-message leaves what we have; treat it as whole
            //  and let validation refuse it.
            break;
        }
        part_flags = 0;
        more = zmq_msg_more(part);
        if (part == &spill) {
            zmq_msg_close(part);
            self->dropped++;
            continue;
        }
        self->view[self->count].data = zmq_msg_data(part);
        self->view[self->count].size = zmq_msg_size(part);
        self->bytes += self->view[self->count].size;
        self->count++;
    }
    return 0;
}

void zfed_frames_close(zfed_frames_t *self)
{
    for (size_t index = 0; index < self->count; index++)
        zmq_msg_close(&self->part[index]);
    self->count = 0;
}

int zfed_frames_send(zfed_frames_t *self, size_t index, void *socket, int flags)
{
    if (index >= self->count)
        return -1;
    //  zmq_msg_send empties the message on success; on failure we keep
    //  ownership and zfed_frames_close will release it.
    return zmq_msg_send(&self->part[index], socket, flags) >= 0 ? 0 : -1;
}

int zfed_send_bytes(void *socket, const void *data, size_t size, int flags)
{
    while (zmq_send(socket, data, size, flags) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}
