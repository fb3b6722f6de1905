/*  zfed_frames - one received multipart message in a fixed array.

    Receiving into a stack-held array of zmq_msg_t costs no allocation per
    message, bounds the frame count explicitly, and lets a body frame be
    forwarded with zmq_msg_send (moved, never copied).  Frames past
    ZFED_FRAMES_MAX are drained and counted so the socket stays in step and
    the caller can refuse the message.

    Private to libzfed (lib/wire): it holds libzmq's zmq_msg_t, which the
    public headers keep out of every program that links zfed.
*/
#ifndef ZFED_FRAMES_H_INCLUDED
#define ZFED_FRAMES_H_INCLUDED

#include "zfed/zfed_mdp.h"

#include <stddef.h>
#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Most frames kept from one message: a ROUTER-side worker REPLY is
//  id "" MDPW01 cmd address "" body = 7, so 16 leaves room for
//  multi-frame bodies without inviting abuse.
#define ZFED_FRAMES_MAX 16

typedef struct {
    zmq_msg_t part[ZFED_FRAMES_MAX];
    zfed_view_t view[ZFED_FRAMES_MAX];
    size_t count;   //  frames kept in part[]
    size_t dropped; //  frames past ZFED_FRAMES_MAX, received and discarded
    size_t bytes;   //  total size of the kept frames
} zfed_frames_t;

//  Receives one whole message from a libzmq socket handle (zsock_resolve).
//  flags: 0 or ZMQ_DONTWAIT for the first frame.  Returns 0, or -1 with
//  errno from libzmq (EAGAIN, EINTR, ETERM) and nothing held.
int zfed_frames_recv(zfed_frames_t *self, void *socket, int flags);

//  Releases every frame still held.  Safe to call twice.
void zfed_frames_close(zfed_frames_t *self);

//  Sends frame index (moving its content: the view is no longer valid),
//  with ZMQ_SNDMORE in flags when more parts follow.  Returns 0 or -1.
int zfed_frames_send(zfed_frames_t *self, size_t index, void *socket, int flags);

//  Sends a copy of bytes as one part.  Returns 0 or -1 (errno from libzmq).
int zfed_send_bytes(void *socket, const void *data, size_t size, int flags);

#ifdef __cplusplus
}
#endif

#endif
