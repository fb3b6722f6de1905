/*  zfed_watch - why a round hears nothing: no broker, refused, no worker.  */
#include "controller/zfed_watch.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A name of ZFED_MDP_SERVICE_MAX bytes and its terminator.
typedef char s_service_t[ZFED_MDP_SERVICE_MAX + 1];

struct _zfed_watch_t {
    zfed_client_t *client;
    char endpoint[256];
    //  The job's services, whether each answered this round, and whether
    //  the broker last said it has no worker for it.
    s_service_t *services;
    bool *heard;
    bool *missing;
    size_t count;
    //  The mmi.service queries out, in the order sent (the broker answers
    //  one client's requests in order): indexes into services.
    size_t queried[ZFED_WATCH_QUERIES_MAX];
    size_t queries_out, answers_in;
    int64_t round_started_ms;
    int64_t due_ms;
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
    self->due_ms = INT64_MAX;
    self->fail_fast = fail_fast;
    if (zfed_watch_add_service(self, service) != 0)
        zfed_watch_destroy(&self);
    return self;
}

void zfed_watch_destroy(zfed_watch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->services);
    free((*self_p)->heard);
    free((*self_p)->missing);
    free(*self_p);
    *self_p = NULL;
}

//  The index of service, or count when the watch does not know it.  A
//  linear scan: a job has one service per site, a look happens every 2 s
//  and a reply costs one strcmp per site.
static size_t s_find(const zfed_watch_t *self, const char *service)
{
    size_t index = 0;
    while (index < self->count && strcmp(self->services[index], service) != 0)
        index++;
    return index;
}

int zfed_watch_add_service(zfed_watch_t *self, const char *service)
{
    if (s_find(self, service) < self->count)
        return 0;
    size_t count = self->count + 1;
    s_service_t *services = realloc(self->services, count * sizeof *services);
    if (services)
        self->services = services;
    bool *heard = realloc(self->heard, count * sizeof *heard);
    if (heard)
        self->heard = heard;
    bool *missing = realloc(self->missing, count * sizeof *missing);
    if (missing)
        self->missing = missing;
    if (!services || !heard || !missing)
        return -1;
    snprintf(self->services[self->count], sizeof self->services[self->count], "%s", service);
    self->heard[self->count] = self->missing[self->count] = false;
    self->count = count;
    return 0;
}

void zfed_watch_start(zfed_watch_t *self, int64_t now_ms)
{
    self->round_started_ms = now_ms;
    self->due_ms = now_ms + ZFED_WATCH_AFTER_MS;
    memset(self->heard, 0, self->count * sizeof *self->heard);
}

void zfed_watch_heard(zfed_watch_t *self, const char *service)
{
    size_t index = s_find(self, service);
    if (index == self->count)
        return;
    self->heard[index] = true;
    self->missing[index] = false;
    //  An answer came through the broker: what the link said is old news.
    if (self->finding != ZFED_WATCH_NO_WORKER) {
        self->finding = self->logged = ZFED_WATCH_NOTHING;
        self->reason[0] = '\0';
    }
    for (size_t other = 0; other < self->count; other++)
        if (!self->heard[other])
            return;
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
    } else if (self->answers_in == self->queries_out) {
        //  Connected: ask the broker whether anyone serves each silent service.
        self->queries_out = self->answers_in = 0;
        for (size_t index = 0; index < self->count && self->queries_out < ZFED_WATCH_QUERIES_MAX;
             index++)
            if (!self->heard[index] &&
                zfed_client_send(self->client, ZFED_MMI_SERVICE, self->services[index],
                                 strlen(self->services[index])) == 0)
                self->queried[self->queries_out++] = index;
    }
    return self->finding;
}

//  A site's service (SERVICE@SITE) is started as zfed-worker --service
//  SERVICE --site SITE; any other as zfed-worker --service SERVICE.
static void s_hint(const char *service, char *hint, size_t size)
{
    const char *at = strchr(service, '@');
    if (at)
        snprintf(hint, size, "--service %.*s --site %s", (int)(at - service), service, at + 1);
    else
        snprintf(hint, size, "--service %s", service);
}

//  The finding once every query of a look is answered: the services
//  without workers, named as long as the reason has room.
static void s_conclude(zfed_watch_t *self)
{
    size_t missing = 0, first = 0, named = 0;
    for (size_t index = self->count; index-- > 0;)
        if (self->missing[index]) {
            missing++;
            first = index;
        }
    if (missing == 0) {
        //  200, or a broker without 8/MMI (501): nothing we can tell.
        if (self->finding != ZFED_WATCH_NOTHING) {
            self->reason[0] = '\0';
            s_found(self, ZFED_WATCH_NOTHING);
        }
        return;
    }
    if (missing == 1) {
        char hint[2 * ZFED_MDP_SERVICE_MAX + 32];
        s_hint(self->services[first], hint, sizeof hint);
        snprintf(self->reason, sizeof self->reason,
                 "no worker is registered for service '%s' at %s (start one with zfed-worker "
                 "%s)",
                 self->services[first], self->endpoint, hint);
        s_found(self, ZFED_WATCH_NO_WORKER);
        return;
    }
    //  Room for the tail: " and N more at ENDPOINT (start ... SERVICE ...)".
    size_t tail = strlen(self->endpoint) + strlen(self->services[first]) + 128;
    size_t room = sizeof self->reason > tail ? sizeof self->reason - tail : 0;
    size_t used = (size_t)snprintf(self->reason, sizeof self->reason,
                                   "no worker is registered for services ");
    for (size_t index = 0; index < self->count; index++) {
        if (!self->missing[index])
            continue;
        size_t length = strlen(self->services[index]) + 4;
        if (used + length > room)
            break;
        used += (size_t)snprintf(self->reason + used, sizeof self->reason - used, "%s'%s'",
                                 named ? ", " : "", self->services[index]);
        named++;
    }
    if (named < missing)
        used += (size_t)snprintf(self->reason + used, sizeof self->reason - used, " and %zu more",
                                 missing - named);
    //  Several services are a job's sites: SERVICE@SITE each.
    const char *at = strchr(self->services[first], '@');
    int prefix = at ? (int)(at - self->services[first]) : (int)strlen(self->services[first]);
    snprintf(self->reason + used, sizeof self->reason - used,
             " at %s (start one for each site with zfed-worker --service %.*s --site SITE)",
             self->endpoint, prefix, self->services[first]);
    s_found(self, ZFED_WATCH_NO_WORKER);
}

bool zfed_watch_reply(zfed_watch_t *self, const char *service, const uint8_t *body, size_t size)
{
    if (strcmp(service, ZFED_MMI_SERVICE) != 0)
        return false;
    if (self->answers_in == self->queries_out)
        return true; //  a late answer to a query we no longer need
    size_t index = self->queried[self->answers_in++];
    //  A service heard from meanwhile is served, whatever the query says.
    self->missing[index] = !self->heard[index] && size == strlen(ZFED_MMI_NOT_FOUND) &&
                           memcmp(body, ZFED_MMI_NOT_FOUND, size) == 0;
    if (self->answers_in == self->queries_out)
        s_conclude(self);
    return true;
}
