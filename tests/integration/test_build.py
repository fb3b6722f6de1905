"""The build scripts a newcomer meets first: a second configure must not
change any compile flag (else every object is rebuilt), and scripts/build.sh
answers --help itself."""

import glob
import os
import shutil
import subprocess
import tempfile
import unittest

from zfedtest import SOURCE_DIR, main

BUILD_SCRIPT = os.path.join(SOURCE_DIR, "scripts", "build.sh")


def flags(build_dir):
    """Every target's compile flags, as make will compare them."""
    found = {}
    for path in sorted(glob.glob(os.path.join(build_dir, "**", "flags.make"), recursive=True)):
        with open(path) as handle:
            found[os.path.relpath(path, build_dir)] = handle.read()
    return found


class Configure(unittest.TestCase):

    def test_second_configure_keeps_every_flag(self):
        build_dir = tempfile.mkdtemp(prefix="zfed-configure-")
        try:
            def configure():
                subprocess.run(["cmake", "-S", SOURCE_DIR, "-B", build_dir, "-DZFED_WERROR=ON"],
                               check=True, capture_output=True)
                return flags(build_dir)
            first = configure()
            self.assertIn(os.path.join("CMakeFiles", "zfed_objects.dir", "flags.make"), first)
            second = configure()
            for name in first:
                self.assertEqual(second[name], first[name], name)
            # The include path keeps czmq's -isystem directory.
            objects = first[os.path.join("CMakeFiles", "zfed_objects.dir", "flags.make")]
            for line in objects.splitlines():
                if line.startswith("C_FLAGS"):
                    self.assertNotIn("-isystem", line)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)


class BuildScript(unittest.TestCase):

    def test_help_is_its_own(self):
        result = subprocess.run([BUILD_SCRIPT, "--help"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("scripts/build.sh [BUILD_DIR]", result.stdout)
        self.assertNotIn("cmake [options]", result.stdout + result.stderr)

    def test_unknown_option_is_refused(self):
        result = subprocess.run([BUILD_SCRIPT, "--fast"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("build.sh: unknown option '--fast'", result.stderr)


if __name__ == "__main__":
    main()
