/*  zfed_status - a broker's load and counters, asked with 8/MMI
    mmi.status and shown for people or as JSON (private header; the
    controller's --status).
*/
#ifndef ZFED_STATUS_H_INCLUDED
#define ZFED_STATUS_H_INCLUDED

#include "zfed/zfed_client.h"
#include "zfed/zfed_error.h"

#include <stdbool.h>
#include <stdio.h>

//  Status answers come quickly or not at all.
#define ZFED_STATUS_TIMEOUT_MS 3000

//  Asks the broker at endpoint (CURVE when curve_cert and server_key are
//  given) and prints its answer to out.  0, or -1 with the reason in
//  error (ZFED_E_TRANSPORT): no answer in time, our key refused, a broker
//  that does not implement mmi.status, an answer that is not a status.
int zfed_status_print(const char *endpoint, const char *curve_cert, const char *server_key,
                      bool as_json, FILE *out, zfed_error_t *error);

//  How long the controller's start waits for the broker to answer its
//  probe (PROTOCOL.md 3.1).
#define ZFED_PROBE_TIMEOUT_MS 3000

//  Whether the broker at endpoint stamps replies, asked with mmi.status
//  on client: 1 a zfed broker that stamps (a status map with "stamps":
//  true), 0 a broker that does not (501, an answer that is no zfed
//  status, or a status map without the flag: a zfed-broker older than
//  stamps), -1 no answer in
//  ZFED_PROBE_TIMEOUT_MS or no connection.  *compact_clients: whether the
//  status map also says "compact_clients": true (PROTOCOL.md 3.3).
int zfed_status_probe(zfed_client_t *client, const char *endpoint, bool *compact_clients);

#endif
