#!/usr/bin/python3
# Judges each JSON file against a JSON Schema with python3-jsonschema (not
# kbsim's code), in one process: prints "valid FILE" or "invalid FILE:
# MESSAGE" per file, in order. Exit 0 when every file was judged (valid or
# not), 2 when the schema itself or a file could not be read.
#
# schema_each.py --serve judges requests read from standard input until it
# ends, one a line: SCHEMA, then each FILE, tab-separated. After a request's
# lines it prints "." alone; a schema or file that could not be read is a
# line "error WHAT: WHY" instead of verdicts. tests/proc.c keeps one such
# process per test program: importing jsonschema costs about 0.2 s of CPU.
import json
import sys

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

validators = {}


def validator(path):
    if path not in validators:
        with open(path) as f:
            schema = json.load(f)
        cls = validator_for(schema)
        cls.check_schema(schema)
        validators[path] = cls(schema)
    return validators[path]


def judge(schema, paths):
    check = validator(schema)
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        error = next(iter(sorted(check.iter_errors(doc), key=str)), None)
        if error is None:
            print("valid", path)
        else:
            print("invalid %s: %s" % (path, error.message.splitlines()[0]))


def unreadable(what, e):
    return "error %s: %s" % (getattr(e, "filename", None) or what, e)


if sys.argv[1:] != ["--serve"]:
    try:
        judge(sys.argv[1], sys.argv[2:])
    except (OSError, ValueError, SchemaError) as e:
        print(unreadable(sys.argv[1], e), file=sys.stderr)
        sys.exit(2)
    sys.exit(0)
for request in sys.stdin:
    words = request.rstrip("\n").split("\t")
    try:
        judge(words[0], words[1:])
    except (OSError, ValueError, SchemaError) as e:
        print(unreadable(words[0], e))
    print(".", flush=True)
