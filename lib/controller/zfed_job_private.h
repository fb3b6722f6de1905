/*  zfed_job_private - the fields of a job, for libzfed's own modules and
    the unit tests (private header).

    Everyone else goes through zfed_job.h, so a new setting or a longer
    limit never changes what a program linked against libzfed sees.  Every
    text field is checked against its size by zfed_job_set, which names the
    setting when it does not fit.
*/
#ifndef ZFED_JOB_PRIVATE_H_INCLUDED
#define ZFED_JOB_PRIVATE_H_INCLUDED

#include "ml/zfed_sites.h"
#include "zfed/zfed_job.h"
#include "zfed/zfed_mdp.h"
#include "zfed/zfed_reduce.h"

struct _zfed_job_t {
    char job_id[ZFED_JOB_ID_MAX + 1]; //  empty: zfed_job_finish picks one
    char service[64];
    char endpoint[ZFED_JOB_ENDPOINT_MAX];
    char workdir[ZFED_JOB_PATH_MAX];
    uint32_t rounds;
    uint32_t tasks;
    json_t *params;       //  object, owned
    json_t *task_params;  //  NULL or array of objects, owned
    json_t *round_params; //  NULL or array of objects / arrays of objects, owned
    //  Quorum as given: a count, or a fraction of the tasks; resolved into
    //  quorum by zfed_job_finish.
    double quorum_fraction; //  > 0 when given as a fraction
    uint32_t quorum_count;  //  > 0 when given as a count
    uint32_t quorum;        //  resolved: results needed to close a round
    int64_t round_timeout_ms;
    int64_t grace_ms;
    int64_t task_timeout_ms; //  0: round_timeout / (retries + 1)
    uint32_t retries;
    uint32_t batch; //  tasks per request (1: one zfed.task body each; more: zfed.batch)
    //  Requests of a round in flight at once: the rest wait for answers, so
    //  a 100,000-task round does not sit in the broker's memory all at once.
    uint32_t window;
    //  Each task goes to replicas distinct workers and a value needs a
    //  strict majority of them (zfed_vote); exclude_liars: a worker caught
    //  in a minority is excluded for the rest of the job.
    uint32_t replicas;
    bool exclude_liars;
    zfed_agg_strategy_t strategy;
    double trim;
    zfed_metric_t metric;
    bool maximize;
    bool metric_given; //  chosen by the user (else a service without a scalar
                       //  aggregate selects by results)
    //  CURVE (empty: plaintext)
    char curve_cert[ZFED_JOB_PATH_MAX];
    char server_key[ZFED_JOB_PATH_MAX];

    //  Model services (schemas/MODELS.md 9-10); zfed_job_finish refuses
    //  them for a value service.
    char initial_model[ZFED_JOB_PATH_MAX]; //  empty: the service's initial_model hook
    uint64_t seed;                         //  for that hook
    zfed_keep_t keep;
    uint32_t keep_last;     //  ZFED_KEEP_LAST: rounds kept
    uint32_t chunk;         //  bytes per chunk of the global model
    uint64_t inline_memory; //  bytes of a round's inline results kept in memory
    //  Server optimisers: NaN until given; zfed_job_finish puts the
    //  strategy's defaults in those not given (zfed_opt_defaults).
    double server_lr, beta1, beta2, tau;
    uint32_t krum_f, krum_m;
    //  Which model keys were set (a value service refuses them).
    unsigned model_keys;
    //  Loaded from a job folder for --resume: its initial model is the
    //  folder's copy, the file named here need not exist any more.
    bool resumed;
    //  Someone set tasks (a job with sites has one task per site).
    bool tasks_given;

    //  Sites (JOB.md): one task per site, task t addressed to
    //  site_services[t] (SERVICE@SITE, resolved by zfed_job_finish) with
    //  params["site"] = sites[t].  NULL: no sites.
    json_t *sites; //  array of names, owned
    char (*site_services)[ZFED_MDP_SERVICE_MAX + 1];
    //  The split the sites come from (zfed-split's split.json): its path
    //  (absolute once finished) and its description, read by finish.
    char split[ZFED_JOB_PATH_MAX];
    json_t *split_json;
    //  For a site-bound service (mlp) with a split: what the split says
    //  of each site's shard, in task order (zfed_sites.h).  NULL: nothing
    //  to hold a result against.
    zfed_site_shard_t *site_shards;
    //  The folder of the set each round's model is evaluated on, and that
    //  set as the service's open_data loaded it when finish checked the
    //  folder (NULL: none): the controller scores on it, so the set is
    //  read once.  zfed_job_clear closes it.
    char eval_data[ZFED_JOB_PATH_MAX];
    void *eval_set;
};

//  A task's params as its service sees them: in a job with sites, without
//  the "site" its workers check and take out (in place, in the unpacked
//  object).
void zfed_job_service_params(const zfed_job_t *job, msgpack_object *params);

//  keep_models as written in job files ("last:3"); returns text.
const char *zfed_job_keep_text(const zfed_job_t *job, char *text, size_t size);

//  The same defaults as zfed_job_new, in place (tests keep jobs on the
//  stack); zfed_job_clear releases what init took.
int zfed_job_init(zfed_job_t *job);
void zfed_job_clear(zfed_job_t *job);

#endif
