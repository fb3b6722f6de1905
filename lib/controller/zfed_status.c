/*  zfed_status - mmi.status, asked and shown.  */
#include "controller/zfed_status.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_util.h"

#include <czmq.h>
#include <string.h>

//  How often the wait looks at the connection, so a refused key is said
//  at once rather than after the whole timeout.
#define LINK_CHECK_MS 50

static uint64_t s_counter(json_t *counters, const char *name)
{
    return (uint64_t)json_integer_value(json_object_get(counters, name));
}

static void s_print_human(const char *endpoint, json_t *status, FILE *out)
{
    json_t *counters = json_object_get(status, "counters");
    fprintf(out, "broker %s (zfed %s), up %.1f s, %lld workers\n\n", endpoint,
            json_string_value(json_object_get(status, "version")),
            json_integer_value(json_object_get(status, "uptime_ms")) / 1000.0,
            json_integer_value(json_object_get(status, "workers")));
    fprintf(out, "%-24s %8s %6s %8s %10s\n", "service", "workers", "idle", "queued", "in flight");
    const char *name;
    json_t *entry;
    json_object_foreach(json_object_get(status, "services"), name, entry)
    {
        fprintf(out, "%-24s %8lld %6lld %8lld %10lld\n", name,
                json_integer_value(json_object_get(entry, "workers")),
                json_integer_value(json_object_get(entry, "idle")),
                json_integer_value(json_object_get(entry, "queued")),
                json_integer_value(json_object_get(entry, "in_flight")));
    }
    uint64_t dropped = s_counter(counters, "malformed") + s_counter(counters, "unexpected") +
                       s_counter(counters, "stale_replies") + s_counter(counters, "unroutable") +
                       s_counter(counters, "forbidden");
    fprintf(out,
            "\nrequests %llu, done %llu, failed %llu (expired %llu, refused at a limit %llu), "
            "re-dispatched %llu\n"
            "dropped %llu (malformed %llu, unexpected %llu, stale replies %llu, undeliverable "
            "%llu, forbidden %llu)\n"
            "workers: %llu registered, %llu expired, %llu left; connections: %llu accepted, %llu "
            "closed, %llu refused at the handshake\n",
            (unsigned long long)s_counter(counters, "requests"),
            (unsigned long long)s_counter(counters, "replies"),
            (unsigned long long)s_counter(counters, "failed"),
            (unsigned long long)s_counter(counters, "expired"),
            (unsigned long long)s_counter(counters, "rejected"),
            (unsigned long long)s_counter(counters, "redispatched"), (unsigned long long)dropped,
            (unsigned long long)s_counter(counters, "malformed"),
            (unsigned long long)s_counter(counters, "unexpected"),
            (unsigned long long)s_counter(counters, "stale_replies"),
            (unsigned long long)s_counter(counters, "unroutable"),
            (unsigned long long)s_counter(counters, "forbidden"),
            (unsigned long long)s_counter(counters, "workers_ready"),
            (unsigned long long)s_counter(counters, "workers_expired"),
            (unsigned long long)s_counter(counters, "workers_left"),
            (unsigned long long)s_counter(counters, "connections_accepted"),
            (unsigned long long)s_counter(counters, "connections_closed"),
            (unsigned long long)(s_counter(counters, "handshakes_failed") +
                                 s_counter(counters, "auth_refused")));
}

//  The broker's answer as a JSON object, or NULL with why in error;
//  *answered says whether any answer came within timeout_ms.
static json_t *s_ask(zfed_client_t *client, const char *endpoint, int timeout_ms, bool *answered,
                     zfed_error_t *error)
{
    *answered = false;
    if (zfed_client_send(client, ZFED_MMI_STATUS, "", 0) != 0) {
        zfed_error_set(error, ZFED_E_TRANSPORT, "", "cannot send to %s", endpoint);
        return NULL;
    }
    int64_t deadline = zfed_clock_ms() + timeout_ms;
    const char *service = NULL;
    const uint8_t *body = NULL;
    size_t size = 0;
    int got = 0;
    while (got == 0 && zfed_clock_ms() < deadline) {
        const zfed_link_status_t *link = zfed_client_link(client);
        if (link->state == ZFED_LINK_REFUSED || link->state == ZFED_LINK_FAILED) {
            zfed_error_set(error, ZFED_E_TRANSPORT, "", "no status: %s", link->reason);
            return NULL;
        }
        got = zfed_client_recv(client, LINK_CHECK_MS, &service, &body, &size);
    }
    if (got != 1) {
        const zfed_link_status_t *link = zfed_client_link(client);
        zfed_error_set(error, ZFED_E_TRANSPORT, "", "no status from %s within %d ms%s", endpoint,
                       timeout_ms,
                       got < 0         ? " (interrupted)"
                       : link->ever_up ? " (connected, but no answer)"
                                       : " (no connection: is a broker running there?)");
        return NULL;
    }
    *answered = true;
    if (size == strlen(ZFED_MMI_NOT_IMPLEMENTED) &&
        memcmp(body, ZFED_MMI_NOT_IMPLEMENTED, size) == 0) {
        zfed_error_set(error, ZFED_E_TRANSPORT, "",
                       "the broker at %s does not implement mmi.status (it answered 501): a "
                       "Majordomo broker, but not zfed's, so it has no load or counters to show",
                       endpoint);
        return NULL;
    }
    json_t *status = NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    if (zfed_msgpack_check(body, size, NULL, 0) == 0 && zfed_unpack(&unpacked, body, size) == 0)
        status = zfed_json_from_msgpack(&unpacked.data);
    msgpack_unpacked_destroy(&unpacked);
    if (!json_is_object(status)) {
        json_decref(status);
        zfed_error_set(error, ZFED_E_TRANSPORT, "",
                       "the broker at %s answered mmi.status with something that is not a zfed "
                       "status (%zu bytes)",
                       endpoint, size);
        return NULL;
    }
    return status;
}

int zfed_status_print(const char *endpoint, const char *curve_cert, const char *server_key,
                      bool as_json, FILE *out, zfed_error_t *error)
{
    zfed_client_t *client = zfed_client_new(endpoint, curve_cert, server_key);
    if (!client)
        return zfed_error_set(error, ZFED_E_TRANSPORT, "", "cannot set up a connection to %s",
                              endpoint);
    bool answered;
    json_t *status = s_ask(client, endpoint, ZFED_STATUS_TIMEOUT_MS, &answered, error);
    zfed_client_destroy(&client);
    if (!status)
        return -1;
    if (as_json) {
        char *text = json_dumps(status, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
    } else
        s_print_human(endpoint, status, out);
    json_decref(status);
    return 0;
}

int zfed_status_probe(zfed_client_t *client, const char *endpoint, bool *compact_clients)
{
    bool answered;
    zfed_error_t error;
    json_t *status = s_ask(client, endpoint, ZFED_PROBE_TIMEOUT_MS, &answered, &error);
    //  A zfed-broker older than stamps answers a status map too: only the
    //  flag says that this one stamps (PROTOCOL.md 3.1).
    bool zfed = json_is_object(status) && json_is_string(json_object_get(status, "version"));
    bool stamps = zfed && json_is_true(json_object_get(status, "stamps"));
    *compact_clients = stamps && json_is_true(json_object_get(status, "compact_clients"));
    if (zfed && !stamps)
        zfed_info("the broker at %s answered mmi.status without \"stamps\": true (a zfed-broker "
                  "older than stamps, version %s)",
                  endpoint, json_string_value(json_object_get(status, "version")));
    json_decref(status);
    return stamps ? 1 : answered ? 0 : -1;
}
