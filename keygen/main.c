/*  zfed-keygen - makes a CurveZMQ certificate pair for a zfed broker, worker
    or controller, in czmq's certificate format.
*/
#include "zfed/zfed_util.h"
#include "core/zfed_cli.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROGRAM         "zfed-keygen"
#define NAME_MAX_LENGTH 64
#define KEY_SUFFIX      ".key"

static void s_usage(void)
{
    printf("Usage: " PROGRAM " [OPTION]... NAME\n"
           "Write a CurveZMQ certificate pair for NAME.  DIR/NAME.key is public: hand it out;\n"
           "DIR/NAME.key_secret is secret (mode 0600): keep it on the host that uses it.\n"
           "\n"
           "  --dir DIR        where to write (default: the current directory)\n"
           "  --force          replace an existing pair\n"
           "  -h, --help       show this help and exit\n"
           "  -V, --version    show the version and exit\n"
           "\n"
           "Give the broker its NAME.key_secret with --curve-cert; put each worker's NAME.key\n"
           "in the broker's --workers-dir and each controller's in --controllers-dir; give\n"
           "every worker and controller its own _secret with --curve-cert and the broker's\n"
           "NAME.key with --server-key.  Deleting a .key from a directory revokes it for new\n"
           "connections.  Exit status: 0 written, 1 failure, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = ".";
    bool force = false;
    opterr = 0;
    int option;
    while ((option = getopt_long(argc, argv, ":d:fhV", options, NULL)) != -1) {
        switch (option) {
        case 'd':
            dir = optarg;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            s_usage();
            return ZFED_EXIT_OK;
        case 'V':
            zfed_cli_version(PROGRAM);
            return ZFED_EXIT_OK;
        default:
            zfed_cli_bad_option(PROGRAM, argc, argv, option);
        }
    }
    if (optind != argc - 1)
        zfed_cli_fail(PROGRAM, optind >= argc ? "NAME is missing" : "one NAME at a time");
    const char *name = argv[optind];
    if (!zfed_is_safe_name(name, NAME_MAX_LENGTH))
        zfed_cli_fail(PROGRAM,
                      "NAME: 1 to %d characters of A-Z a-z 0-9 . _ - not starting with '.', "
                      "got '%s'",
                      NAME_MAX_LENGTH, name);
    if (zfed_mkdir_p(dir) != 0) {
        fprintf(stderr, "%s: cannot create %s: %s\n", PROGRAM, dir, strerror(errno));
        return ZFED_EXIT_FAILED;
    }
    char public_path[1024], secret_path[1040];
    snprintf(public_path, sizeof public_path, "%s/%s" KEY_SUFFIX, dir, name);
    snprintf(secret_path, sizeof secret_path, "%s_secret", public_path);
    if (!force && (access(public_path, F_OK) == 0 || access(secret_path, F_OK) == 0)) {
        fprintf(stderr, "%s: %s already exists; --force replaces it\n", PROGRAM, public_path);
        return ZFED_EXIT_FAILED;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "%s: cannot make a key pair\n", PROGRAM);
        return ZFED_EXIT_FAILED;
    }
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "created-by", "zfed-keygen");
    //  zcert_save writes the public file and NAME_secret (mode 0600).
    int rc = zcert_save(cert, public_path);
    if (rc == 0)
        rc = chmod(secret_path, 0600);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", PROGRAM, public_path, strerror(errno));
        zcert_destroy(&cert);
        return ZFED_EXIT_FAILED;
    }
    printf("%s\n%s\n%s\n", zcert_public_txt(cert), public_path, secret_path);
    zcert_destroy(&cert);
    return ZFED_EXIT_OK;
}
