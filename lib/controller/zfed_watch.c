/*  zfed_watch - why a round hears nothing: no broker, refused, no worker.  */
#include "controller/zfed_watch.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _zfed_watch_t {
    zfed_client_t *client;
    char endpoint[256];
    char service[ZFED_MDP_SERVICE_MAX + 1];
    int64_t round_started_ms;
    int64_t due_ms;
    bool query_out; //  an mmi.service query awaits its answer
    zfed_watch_finding_t finding;
    zfed_watch_finding_t logged; //  the finding last logged
    bool fail_fast;              //  a finding ends the job: no waiting to announce
    char reason[1024];
};

zfed_watch_t *zfed_watch_new(zfed_client_t *client, const char *endpoint, const char *service,
                             bool fail_fast)
{
    zfed_watch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->client = client;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    snprintf(self->service, sizeof self->service, "%s", service);
    self->due_ms = INT64_MAX;
    self->fail_fast = fail_fast;
    return self;
}

void zfed_watch_destroy(zfed_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void zfed_watch_start(zfed_watch_t *self, int64_t now_ms)
{
    self->round_started_ms = now_ms;
    self->due_ms = now_ms + ZFED_WATCH_AFTER_MS;
}

void zfed_watch_heard(zfed_watch_t *self)
{
    //  Whatever was wrong has mended; if it comes back, it is news again.
    self->due_ms = INT64_MAX;
    self->finding = self->logged = ZFED_WATCH_NOTHING;
    self->reason[0] = '\0';
}

int64_t zfed_watch_due(zfed_watch_t *self)
{
    return self->due_ms;
}

const char *zfed_watch_reason(zfed_watch_t *self)
{
    return self->reason;
}

const char *zfed_watch_explain(zfed_watch_t *self, int64_t now_ms)
{
    //  What the connection says now beats an older finding.
    const zfed_link_status_t *link = zfed_client_link(self->client);
    if (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED)
        snprintf(self->reason, sizeof self->reason, "%s", link->reason);
    else if (!link->ever_up && self->finding == ZFED_WATCH_NOTHING)
        snprintf(self->reason, sizeof self->reason,
                 "no broker answers at %s: no connection after %.1f s (is zfed-broker running "
                 "there?)",
                 self->endpoint, (now_ms - self->round_started_ms) / 1000.0);
    return self->reason;
}

//  Logs a finding that is new; a refusal was logged by the client already.
static void s_found(zfed_watch_t *self, zfed_watch_finding_t finding)
{
    self->finding = finding;
    if (finding == self->logged)
        return;
    self->logged = finding;
    if (finding != ZFED_WATCH_NOTHING && finding != ZFED_WATCH_REFUSED && !self->fail_fast)
        zfed_warn("%s; waiting until the round's deadline", self->reason);
}

zfed_watch_finding_t zfed_watch_check(zfed_watch_t *self, int64_t now_ms)
{
    if (now_ms < self->due_ms)
        return self->finding;
    self->due_ms = now_ms + ZFED_WATCH_AFTER_MS;
    const zfed_link_status_t *link = zfed_client_link(self->client);
    double waited_s = (now_ms - self->round_started_ms) / 1000.0;
    if (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED) {
        snprintf(self->reason, sizeof self->reason, "%s", link->reason);
        s_found(self, ZFED_WATCH_REFUSED);
    } else if (link->state != ZFED_LINK_UP) {
        snprintf(self->reason, sizeof self->reason,
                 "no broker answers at %s: no connection after %.1f s (is zfed-broker running "
                 "there?)",
                 self->endpoint, waited_s);
        s_found(self, ZFED_WATCH_NO_BROKER);
    } else if (!self->query_out) {
        //  Connected: ask the broker whether anyone serves the service.
        self->query_out = zfed_client_send(self->client, ZFED_MMI_SERVICE, self->service,
                                           strlen(self->service)) == 0;
    }
    return self->finding;
}

bool zfed_watch_reply(zfed_watch_t *self, const char *service, const uint8_t *body, size_t size)
{
    if (strcmp(service, ZFED_MMI_SERVICE) != 0)
        return false;
    if (!self->query_out)
        return true; //  a late answer to a query we no longer need
    self->query_out = false;
    if (size == strlen(ZFED_MMI_NOT_FOUND) && memcmp(body, ZFED_MMI_NOT_FOUND, size) == 0) {
        snprintf(self->reason, sizeof self->reason,
                 "no worker is registered for service '%s' at %s (start one with zfed-worker "
                 "--service %s)",
                 self->service, self->endpoint, self->service);
        s_found(self, ZFED_WATCH_NO_WORKER);
    } else if (self->finding != ZFED_WATCH_NOTHING) {
        //  200, or a broker without 8/MMI (501): nothing we can tell.
        self->reason[0] = '\0';
        s_found(self, ZFED_WATCH_NOTHING);
    }
    return true;
}
