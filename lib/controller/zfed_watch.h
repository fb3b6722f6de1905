/*  zfed_watch - says early why a round hears nothing (private header).

    A job whose broker is not there, refuses our key, or has no worker for
    the service would otherwise wait for its whole round timeout in
    silence.  ZFED_WATCH_AFTER_MS into a round, and again every
    ZFED_WATCH_AFTER_MS while some service of the job has not answered in
    it, the watch looks: the socket monitor says whether a connection came
    up and whether the handshake was refused; over a working connection an
    8/MMI mmi.service query per silent service (at most
    ZFED_WATCH_QUERIES_MAX a look) says whether any worker serves it.  A
    job with sites has a service per site (mlp@alpha, mlp@beta, ...): the
    finding names every site without workers, also while other sites
    answer.
    A finding is logged when it appears or changes, never repeated; the
    round keeps waiting for its deadline (workers may still come) unless
    the job was told to fail fast.
*/
#ifndef ZFED_WATCH_H_INCLUDED
#define ZFED_WATCH_H_INCLUDED

#include "zfed/zfed_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZFED_WATCH_AFTER_MS 2000
//  mmi.service queries in one look; the rest wait for the next look.
#define ZFED_WATCH_QUERIES_MAX 64

typedef enum {
    ZFED_WATCH_NOTHING = 0, //  nothing wrong seen (or nothing looked at yet)
    ZFED_WATCH_NO_BROKER,   //  no connection to the broker came up
    ZFED_WATCH_REFUSED,     //  the broker refused our handshake
    ZFED_WATCH_NO_WORKER    //  the broker knows no worker for a service of the job
} zfed_watch_finding_t;

typedef struct _zfed_watch_t zfed_watch_t;

//  client is where the job talks to endpoint; service is the job's (its
//  first task's).  With fail_fast a finding is not announced (the round
//  fails on it).
zfed_watch_t *zfed_watch_new(zfed_client_t *client, const char *endpoint, const char *service,
                             bool fail_fast);
void zfed_watch_destroy(zfed_watch_t **self_p);
//  Another service the job's tasks go to (a site's); one already known is
//  ignored.  0, or -1 when memory runs out.
int zfed_watch_add_service(zfed_watch_t *self, const char *service);

//  A round starts at now_ms: the first look is ZFED_WATCH_AFTER_MS later.
void zfed_watch_start(zfed_watch_t *self, int64_t now_ms);
//  The round heard from service: nothing to look into there (and once
//  every service was heard, nothing at all).  A service the watch does
//  not know changes nothing.
void zfed_watch_heard(zfed_watch_t *self, const char *service);

//  When the next look is due (INT64_MAX: none).
int64_t zfed_watch_due(zfed_watch_t *self);
//  Looks when due; returns the current finding.
zfed_watch_finding_t zfed_watch_check(zfed_watch_t *self, int64_t now_ms);

//  A reply the client received for service: true when it answers the
//  watch's own query (it is then consumed).
bool zfed_watch_reply(zfed_watch_t *self, const char *service, const uint8_t *body, size_t size);

//  The current finding as a sentence ("" when nothing is wrong).
const char *zfed_watch_reason(zfed_watch_t *self);

//  For a round that failed hearing nothing: the finding, brought up to
//  date with what the connection says now (a refusal or no connection at
//  all is known without a query).  "" when nothing is known to be wrong.
const char *zfed_watch_explain(zfed_watch_t *self, int64_t now_ms);

#endif
