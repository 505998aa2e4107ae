#!/usr/bin/python3
# Reads a JUnit XML file with junitparser (Debian's python3-junitparser,
# not kbsim's code) and prints, one per line: "tests N", "failures N",
# "errors N", then "case NAME RESULT TYPE MESSAGE" per testcase (RESULT:
# pass, failure, error). Exit 1 when the file does not parse.
import sys
from junitparser import JUnitXml, Failure, Error

xml = JUnitXml.fromfile(sys.argv[1])
tests = failures = errors = 0
lines = []
for suite in xml:
    tests += suite.tests
    failures += suite.failures
    errors += suite.errors
    for case in suite:
        result, kind, message = "pass", "-", "-"
        for r in case.result:
            if isinstance(r, Failure):
                result = "failure"
            elif isinstance(r, Error):
                result = "error"
            kind, message = r.type or "-", r.message or "-"
        lines.append("case %s %s %s %s" % (case.name, result, kind, message))
print("tests %d" % tests)
print("failures %d" % failures)
print("errors %d" % errors)
print("\n".join(lines))
