/*  zfed - a round-based distributed job runner on ZeroMQ (7/MDP + msgpack).

    One include for the whole public API of libzfed.  Link with
    `pkg-config --cflags --libs zfed`.
*/
#ifndef ZFED_H_INCLUDED
#define ZFED_H_INCLUDED

#include "zfed/zfed_version.h"
#include "zfed/zfed_log.h"
#include "zfed/zfed_util.h"
#include "zfed/zfed_error.h"
#include "zfed/zfed_endpoint.h"
#include "zfed/zfed_signal.h"
#include "zfed/zfed_number.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_msg.h"
#include "zfed/zfed_batch.h"
#include "zfed/zfed_json.h"
#include "zfed/zfed_sha256.h"
#include "zfed/zfed_model.h"
#include "zfed/zfed_safetensors.h"
#include "zfed/zfed_exact.h"
#include "zfed/zfed_reduce.h"
#include "zfed/zfed_descriptor.h"
#include "zfed/zfed_transfer.h"
#include "zfed/zfed_blob_server.h"
#include "zfed/zfed_fetcher.h"
#include "zfed/zfed_fib.h"
#include "zfed/zfed_aggregate.h"
#include "zfed/zfed_service.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_store.h"
#include "zfed/zfed_link.h"
#include "zfed/zfed_client.h"
#include "zfed/zfed_broker.h"
#include "zfed/zfed_worker.h"
#include "zfed/zfed_controller.h"

#endif
