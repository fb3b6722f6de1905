/*  zfed_status - a broker's load and counters, asked with 8/MMI
    mmi.status and shown for people or as JSON (private header; the
    controller's --status).
*/
#ifndef ZFED_STATUS_H_INCLUDED
#define ZFED_STATUS_H_INCLUDED

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

#endif
