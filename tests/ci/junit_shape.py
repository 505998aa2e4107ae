#!/usr/bin/python3
# Reads a JUnit XML file with junitparser (Debian's python3-junitparser)
# and prints its shape, one line each: "root TAG", "suite NAME timed"
# (or "untimed"), then "case NAME classname=CLASSNAME timed" per testcase
# ("untimed" when it has no time attribute). Exit 1 when the file does
# not parse.
import sys
from junitparser import JUnitXml

xml = JUnitXml.fromfile(sys.argv[1])
print("root %s" % xml._elem.tag)
for suite in xml:
    print("suite %s %s" % (suite.name,
                           "timed" if suite._elem.get("time") else "untimed"))
    for case in suite:
        print("case %s classname=%s %s" % (
            case.name, case.classname,
            "timed" if case._elem.get("time") else "untimed"))
