/*  zfed_link - how a worker's or controller's connection to its broker
    stands, as the socket monitor sees it (see zfed_client_link).
*/
#ifndef ZFED_LINK_H_INCLUDED
#define ZFED_LINK_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZFED_LINK_DOWN = 0, //  no connection (yet, or any more)
    ZFED_LINK_UP,       //  connected and the handshake succeeded
    ZFED_LINK_REFUSED,  //  the broker's authentication refused our key
    ZFED_LINK_FAILED    //  the handshake failed: keys or security do not match
} zfed_link_state_t;

typedef struct {
    zfed_link_state_t state;
    bool ever_up;         //  a handshake has succeeded at least once
    uint64_t refusals;    //  handshakes refused or failed so far
    uint64_t disconnects; //  connections lost so far
    char reason[640];     //  what the last refusal means, for people
} zfed_link_status_t;

#ifdef __cplusplus
}
#endif

#endif
