"""cmake --install gives a usable libzfed: a tiny program builds against the
installed headers and library through pkg-config (shared and static), and
the installed programs and man pages are there."""

import os
import shutil
import subprocess
import tempfile
import unittest

from zfedtest import BUILD_DIR, main

PROGRAM = r'''
#include <zfed/zfed.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    zfed_fib_t *fib = zfed_fib_new(10);
    char *sum = zfed_bigint_format(*zfed_fib_sum(fib));
    const uint8_t params[] = {0x81, 0xaf, 'f', 'i', 'b', 'o', 'n', 'a', 'c', 'c', 'i', '_', 'l',
                              'e', 'v', 'e', 'l', 0x0a};
    const uint8_t global[] = {0xa1, '0'};
    zfed_msg_t *task = zfed_msg_new_task("installed", 0, 0, 0, params, sizeof params, -1, global,
                                         sizeof global);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    int rc = task ? zfed_msg_encode(task, &buffer) : -1;
    zfed_msg_t *back = rc == 0 ? zfed_msg_decode(buffer.data, buffer.size, NULL, 0) : NULL;
    printf("%s %s %s %s\n", ZFED_VERSION_STRING, sum,
           back ? zfed_msg_kind_name(zfed_msg_kind(back)) : "?",
           zfed_service_find("fib") ? "fib" : "?");
    zfed_msg_destroy(&back);
    zfed_msg_destroy(&task);
    msgpack_sbuffer_destroy(&buffer);
    free(sum);
    zfed_fib_destroy(&fib);
    return 0;
}
'''


class Install(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="zfed-install-")
        subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", cls.prefix],
                       check=True, capture_output=True)
        cls.env = dict(os.environ)
        pkgconfig = [os.path.join(cls.prefix, d, "pkgconfig")
                     for d in ("lib", "lib64", "lib/x86_64-linux-gnu")]
        cls.env["PKG_CONFIG_PATH"] = ":".join(pkgconfig)
        cls.source = os.path.join(cls.prefix, "tiny.c")
        with open(cls.source, "w") as handle:
            handle.write(PROGRAM)
        # A sanitizer build's library needs the sanitizer runtime linked in.
        cls.extra = (["-fsanitize=address,undefined"]
                     if os.environ.get("ZFED_SANITIZED") in ("1", "ON", "true") else [])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def pkg_config(self, *args):
        return subprocess.run(["pkg-config"] + list(args) + ["zfed"], env=self.env, check=True,
                              capture_output=True, text=True).stdout.split()

    def test_files_in_place(self):
        for program in ("zfed-broker", "zfed-worker", "zfed-controller", "zfed-keygen",
                        "zfed-split", "zfed-model"):
            path = os.path.join(self.prefix, "bin", program)
            version = subprocess.run([path, "--version"], capture_output=True, text=True)
            self.assertEqual(version.returncode, 0)
            self.assertIn(program + " (zfed)", version.stdout)
            self.assertTrue(os.path.exists(os.path.join(self.prefix, "share", "man", "man1",
                                                        program + ".1")))
        self.assertTrue(os.path.exists(os.path.join(self.prefix, "include", "zfed", "zfed.h")))
        self.assertEqual(self.pkg_config("--modversion"), [self.version()])

    def test_man_pages_name_whole_sentences_and_point_to_installed_docs(self):
        names = {
            "zfed-broker": "Route zfed tasks (7/MDP Majordomo, MDP/0.1) from controllers to "
                           "workers",
            "zfed-worker": "Serve zfed tasks from a Majordomo broker",
            "zfed-controller": "Run a federated job through a zfed broker",
            "zfed-keygen": "Write a CurveZMQ certificate pair for NAME",
        }
        docs = os.path.join(self.prefix, "share", "doc", "zfed")
        for program, name in names.items():
            with open(os.path.join(self.prefix, "share", "man", "man1", program + ".1")) as page:
                lines = page.read().splitlines()
            self.assertEqual(lines[lines.index(".SH NAME") + 1], "%s \\- %s" % (program, name))
            self.assertIn("share/doc/zfed/", "\n".join(lines))
        for name in ("JOB.md", "WORKDIR.md", "PROTOCOL.md", "SECURITY.md"):
            self.assertTrue(os.path.exists(os.path.join(docs, name)), name)
        self.assertTrue(os.path.exists(os.path.join(docs, "examples", "jobs",
                                                    "fib-per-round-schedule.json")))

    def test_programs_run_from_any_prefix_without_library_path(self):
        clean = {"PATH": "/usr/bin:/bin"}
        for program in ("zfed-broker", "zfed-worker", "zfed-controller", "zfed-keygen"):
            path = os.path.join(self.prefix, "bin", program)
            version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                     env=clean)
            self.assertEqual(version.returncode, 0, version.stderr)
            linked = subprocess.run(["ldd", path], capture_output=True, text=True,
                                    env=clean).stdout
            self.assertNotIn("not found", linked)
            dynamic = subprocess.run(["readelf", "-d", path], capture_output=True,
                                     text=True).stdout
            self.assertIn("[$ORIGIN/../lib", dynamic)

    def test_pkg_config_file_has_no_placeholder(self):
        libdir = self.pkg_config("--variable=libdir")[0]
        with open(os.path.join(libdir, "pkgconfig", "zfed.pc")) as handle:
            self.assertNotIn("example.invalid", handle.read())

    def test_shared_build_with_rpath_runs_without_library_path(self):
        binary = os.path.join(self.prefix, "tiny-rpath")
        libdir = self.pkg_config("--variable=libdir")[0]
        subprocess.run(["cc", "-o", binary, self.source, "-Wl,-rpath," + libdir] + self.extra +
                       self.pkg_config("--cflags", "--libs"), check=True, env=self.env)
        run = subprocess.run([binary], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin"})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.split()[1], "88")

    def version(self):
        out = subprocess.run([os.path.join(self.prefix, "bin", "zfed-broker"), "--version"],
                             capture_output=True, text=True).stdout
        return out.split()[2]

    def test_public_headers_keep_zeromq_types_out(self):
        # zfed.h is the whole public API (every installed header), and none
        # of it drags czmq or libzmq into a program: their types (zsock_t,
        # zmq_msg_t) belong to libzfed's private headers.
        include = os.path.join(self.prefix, "include", "zfed")
        headers = sorted(name for name in os.listdir(include) if name.endswith(".h"))
        with open(os.path.join(include, "zfed.h")) as handle:
            umbrella = handle.read()
        for name in headers:
            if name != "zfed.h":
                self.assertIn('#include "zfed/%s"' % name, umbrella, name)
        self.assertNotIn("zfed_frames.h", headers)
        probe = os.path.join(self.prefix, "probe.c")
        with open(probe, "w") as handle:
            handle.write("#include <zfed/zfed.h>\n"
                         "#if defined(__CZMQ_H_INCLUDED__) || defined(__ZMQ_H_INCLUDED__)\n"
                         "#error zfed.h pulled in czmq or libzmq\n"
                         "#endif\n"
                         "int main(void) { return zfed_broker_run == 0; }\n")
        compiled = subprocess.run(["cc", "-c", "-o", os.path.join(self.prefix, "probe.o"), probe]
                                  + self.pkg_config("--cflags"), capture_output=True, text=True,
                                  env=self.env)
        self.assertEqual(compiled.returncode, 0, compiled.stderr)

    def test_build_against_shared_library(self):
        binary = os.path.join(self.prefix, "tiny-shared")
        subprocess.run(["cc", "-o", binary, self.source] + self.extra +
                       self.pkg_config("--cflags", "--libs"), check=True, env=self.env)
        libdir = self.pkg_config("--variable=libdir")[0]
        run = subprocess.run([binary], capture_output=True, text=True,
                             env=dict(self.env, LD_LIBRARY_PATH=libdir))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.split(), [self.version(), "88", "zfed.task", "fib"])
        linked = subprocess.run(["ldd", binary], capture_output=True, text=True,
                                env=dict(self.env, LD_LIBRARY_PATH=libdir)).stdout
        self.assertIn("libzfed.so", linked)

    def test_build_against_static_library(self):
        binary = os.path.join(self.prefix, "tiny-static")
        libdir = self.pkg_config("--variable=libdir")[0]
        # libzfed itself static; its dependencies as the system has them
        # (Debian's czmq has no complete static closure).
        flags = self.pkg_config("--cflags", "--libs")
        flags = [os.path.join(libdir, "libzfed.a") if flag == "-lzfed" else flag
                 for flag in flags] + ["-lm", "-lpthread"]
        subprocess.run(["cc", "-o", binary, self.source] + self.extra + flags, check=True,
                       env=self.env)
        run = subprocess.run([binary], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.split()[1], "88")
        linked = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        self.assertNotIn("libzfed", linked)


if __name__ == "__main__":
    main()
