"""reqstats --version prints the version app/version.h defines.

app/version.h is the one place the version is written (the Makefile names
`make dist`'s archive from it too), so the binary must print exactly it.
"""

import os
import re
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("REQSTATS_BIN") or os.path.join(ROOT, "build", "reqstats")


def header_version():
    with open(os.path.join(ROOT, "app", "version.h")) as f:
        m = re.search(r'^#define REQSTATS_VERSION "([^"]+)"$', f.read(), re.M)
    return m.group(1) if m else None


class Version(unittest.TestCase):

    def test_version_option_prints_the_header_version(self):
        version = header_version()
        self.assertRegex(version or "", r"^\d+\.\d+\.\d+$", "app/version.h has no x.y.z version")
        proc = subprocess.run([BIN, "--version"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.decode(), "reqstats %s\n" % version)
        self.assertEqual(proc.stderr, b"")

    def test_make_names_the_archive_after_the_same_version(self):
        # `make dist` names its archive after the Makefile's VERSION, read
        # from app/version.h (`make version` prints it): they must agree.
        proc = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "version"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.decode(), "%s\n" % header_version())

if __name__ == "__main__":
    unittest.main()
